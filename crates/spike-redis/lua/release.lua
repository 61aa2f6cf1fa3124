-- release.lua: give one sold seat back to central stock (an order expired or
-- was cancelled), exactly once: a second release of the same order changes
-- nothing, so a pipeline that crashed between its database update and this
-- call can simply call it again.
--
-- On a train run, the order's seats are cleared on exactly the segments it
-- set, its ticket leaves the hash, and in the same step the waitlist is
-- filled from them (waitlist_rules.lua's fill_waitlist, with sell.lua's and
-- seats.lua's functions: src/scripts.rs puts all three before this file).
--
-- KEYS as in waitlist_rules.lua: 1..7 as in sell.lua (KEYS[5]
-- spike:{E}:released, the set of order ids already given back), 8 the
-- tickets, 9 the seats' scratch key, 10..12 the waitlist's, 13.. a train
-- run's every seat map (none for other sales)
-- ARGV[1] order id, ARGV[2] its user ('' when none), ARGV[3] its request id
--
-- Returns {code, remaining, filled}, the codes being constants declared by
-- the prelude that src/scripts.rs puts before this file (ReleaseCode there):
--   RELEASED | ALREADY_RELEASED | NOT_SOLD (no such sold order) | NO_SUCH_SALE
-- filled: how many waitlist entries the seats filled.
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold', 'train_classes', 'train_segments')
if not sale[1] then
  return {NO_SUCH_SALE, 0, 0}
end
local segments = tonumber(sale[4] or 0)
if #KEYS ~= 12 + tonumber(sale[3] or 0) * segments then
  return redis.error_reply('release.lua: the run\'s seat maps must be declared')
end
local total, sold = tonumber(sale[1]), tonumber(sale[2])
local order, user, request = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SISMEMBER', KEYS[5], order) == 1 then
  return {ALREADY_RELEASED, total - sold, 0}
end
-- The order must be one this sale sold to this request, for this user.
if redis.call('HGET', KEYS[3], request) ~= order .. ' ' .. user then
  return {NOT_SOLD, total - sold, 0}
end
if user ~= '' then
  local held = redis.call('HGET', KEYS[2], user)
  if held then
    local kept = {}
    for id in string.gmatch(held, '%S+') do
      if id ~= order then table.insert(kept, id) end
    end
    if #kept == 0 then
      redis.call('HDEL', KEYS[2], user)
    else
      redis.call('HSET', KEYS[2], user, table.concat(kept, ' '))
    end
  end
end
redis.call('HDEL', KEYS[3], request)
local ticket = redis.call('HGET', KEYS[8], order)
local returned
if ticket then
  local class, from, to, seats = string.match(ticket, '^(%d+)/(%d+)/(%d+)/(.+)$')
  returned = {tonumber(class), tonumber(from), tonumber(to)}
  for seat in string.gmatch(seats, '%d+') do
    for segment = returned[2], returned[3] - 1 do
      redis.call('SETBIT', KEYS[13 + returned[1] * segments + segment], seat, 0)
    end
  end
  redis.call('HDEL', KEYS[8], order)
end
redis.call('SADD', KEYS[5], order)
redis.call('HINCRBY', KEYS[1], 'sold', -1)
if not returned then
  return {RELEASED, total - sold + 1, 0}
end
use_every_map()
open_sale()
local filled = fill_waitlist(returned[1], returned[2], returned[3])
close_sale()
return {RELEASED, remaining_now(), filled}
