-- waitlist.lua: place, read or withdraw a traveller's waitlist entry on a
-- train run, atomically, by spike-core's rules (Book::join_waitlist and its
-- neighbours in the embedded central stock are the mirror). sell.lua,
-- seats.lua and waitlist_rules.lua come first (src/scripts.rs).
--
-- KEYS as in waitlist_rules.lua (1..12, then the run's every seat map)
-- ARGV[1] 'join' | 'status' | 'leave' | 'refill', ARGV[2] the user ('' for
-- a refill)
-- join only: ARGV[3] request id, ARGV[4] node id, ARGV[5] class index,
-- ARGV[6] from station, ARGV[7] to station, ARGV[8] passengers,
-- ARGV[9] the preferred letters as bits, ARGV[10] the deadline (Unix ms)
--
-- Returns {code, place, ahead, entry wire or latest order, now_ms}
-- (WaitlistCode in src/scripts.rs):
--   join:   PLACED (this request's entry) | ALREADY_WAITING (their waiting
--           entry) | BOOKABLE | REQUEST_ID_TAKEN | NOT_OPEN |
--           LIMIT_REACHED (latest order) | NO_SUCH_SALE
--   status: FOUND (their latest entry) | NONE
--   leave:  WITHDRAWN (the entry) | NONE (nothing of theirs waits)
--   refill: REFILLED, with how many entries it filled as the place: every
--           waiting entry the free seats can serve is filled (a recovery
--           runs it once the run is restored)
-- A waiting entry's wire may be past its deadline: the reader sees it as
-- expired at now_ms, which is returned for that.
local op, user = ARGV[1], ARGV[2]
if not open_sale() or not train then
  return {NO_SUCH_SALE, 0, 0, '', now_ms or 0}
end
use_every_map()
if #KEYS ~= 12 + tonumber(redis.call('HGET', KEYS[1], 'train_classes')) * run_segments then
  return redis.error_reply('waitlist.lua: the run\'s seat maps must be declared')
end

-- The traveller's latest entry, and whether it is in line now.
local latest = redis.call('HGET', KEYS[11], user)
local entry = latest and read_entry(latest)
local waits = entry and entry.state == 'waiting' and now_ms < entry.deadline
local function answer(code, e)
  local ahead = 0
  if e.state == 'waiting' and now_ms < e.deadline then
    ahead = ahead_of(e.place)
  end
  return {code, tonumber(e.place), ahead, entry_wire(e), now_ms}
end

if op == 'refill' then
  local filled = fill_waitlist(nil)
  close_sale()
  return {REFILLED, filled, 0, '', now_ms}
elseif op == 'status' then
  if not entry then
    return {NONE, 0, 0, '', now_ms}
  end
  return answer(FOUND, entry)
elseif op == 'leave' then
  if not entry or entry.state ~= 'waiting' then
    return {NONE, 0, 0, '', now_ms}
  end
  if not waits then
    settle(entry, 'expired')
    return {NONE, 0, 0, '', now_ms}
  end
  settle(entry, 'withdrawn')
  return answer(WITHDRAWN, entry)
end

-- join
local request, node = ARGV[3], ARGV[4]
local class, from, to = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local k, prefer, deadline = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
if not class_shape(class) or to > run_segments then
  return {NO_SUCH_SALE, 0, 0, '', now_ms}
end
if entry then
  if entry.request == request then
    return answer(PLACED, entry)
  end
  if waits then
    return answer(ALREADY_WAITING, entry)
  end
end
if request_entry(request) then
  return {REQUEST_ID_TAKEN, 0, 0, '', now_ms}
end
if now_ms < opens_at then
  return {NOT_OPEN, 0, 0, '', now_ms}
end
local last = at_limit(user)
if last then
  return {LIMIT_REACHED, 0, 0, last, now_ms}
end
if choose_seats(class, from, to, k, prefer) then
  return {BOOKABLE, 0, 0, '', now_ms}
end
if entry and entry.state == 'waiting' then
  settle(entry, 'expired')
end
local place = redis.call('HINCRBY', KEYS[1], 'waitlist_seq', 1)
local placed = {place = string.format('%d', place), user = user, state = 'waiting',
  placed_at = string.format('%d', now_ms), deadline = deadline, request = request, node = node,
  class = class, from = from, to = to, k = k, prefer = prefer, order = '-'}
write_entry(placed)
redis.call('HSET', KEYS[11], user, placed.place)
redis.call('ZADD', KEYS[12], place, placed.place)
return answer(PLACED, placed)
