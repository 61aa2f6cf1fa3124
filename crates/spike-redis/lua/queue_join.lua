-- queue_join.lua: put one buyer in an event's waiting room, or find their
-- place: one place per buyer. Once the sale has opened, the waiting room is
-- sealed first (the seed of the shuffle and how many joined before), so
-- that only who joined before the opening is shuffled. In a spillover room
-- (queue_spillover = 1), a new buyer passes straight through when nobody is
-- waiting and admission.lua's rule admits one more now: joined and admitted
-- in one step, and recorded as a pass. The same steps as the embedded
-- `Book::join_queue` (spike-core/src/memory.rs).
--
-- KEYS[1] spike:{E}:sale          hash: total, sold, opens_at_ms, queue_* rules
-- KEYS[2] spike:{E}:queue         hash: seed, early, sealed_at_ms (once sealed),
--                                 admitted, paced
-- KEYS[3] spike:{E}:queue:places  hash: user -> join index
-- KEYS[4] spike:{E}:queue:steps   sorted set: member admitted, score the time (ms)
-- KEYS[5] spike:{E}:queue:bought  sorted set: "position user" by position
-- KEYS[6] spike:{E}:queue:passed  sorted set: positions that passed straight through
-- ARGV[1] user id, ARGV[2] a seed for the shuffle (used if this call seals)
--
-- Returns {code, number}, the codes being constants declared by the prelude
-- that src/scripts.rs puts before this file (JoinCode there):
--   JOINED (the join index) | PASSED (the join index, which is the position;
--   again on a later join within the admission window of the pass)
--   | NOT_YET_OPEN (when joining starts, ms) | NO_QUEUE | NO_SUCH_SALE
local rule = redis.call('HMGET', KEYS[1], 'total', 'opens_at_ms', 'queue_admit_rate',
  'queue_joins_open_at_ms', 'sold', 'queue_max_active', 'queue_admit_window_ms', 'queue_spillover',
  'paused')
if not rule[1] then
  return {NO_SUCH_SALE, 0}
end
local rate = tonumber(rule[3] or 0)
if rate == 0 then
  return {NO_QUEUE, 0}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local opens_at = tonumber(rule[2])
if now_ms >= opens_at and redis.call('HEXISTS', KEYS[2], 'seed') == 0 then
  seal(KEYS[2], KEYS[3], ARGV[2], now_ms)
end
local place = redis.call('HGET', KEYS[3], ARGV[1])
if place then
  -- A pass holds for the admission window from its step, as an admission does.
  if redis.call('ZSCORE', KEYS[6], place) then
    local at = tonumber(redis.call('ZSCORE', KEYS[4], tonumber(place) + 1) or 0)
    if now_ms - at < tonumber(rule[7]) then
      return {PASSED, tonumber(place)}
    end
  end
  return {JOINED, tonumber(place)}
end
local joins_open_at = tonumber(rule[4] or 0)
if now_ms < joins_open_at then
  return {NOT_YET_OPEN, joins_open_at}
end
local index = redis.call('HLEN', KEYS[3])
redis.call('HSET', KEYS[3], ARGV[1], index)
if tonumber(rule[8] or 0) == 1 and tonumber(rule[5]) < tonumber(rule[1]) and rule[9] ~= '1'
    and redis.call('HEXISTS', KEYS[2], 'seed') == 1 then
  local state = redis.call('HMGET', KEYS[2], 'admitted', 'paced', 'sealed_at_ms',
    'rate_changed_at_ms')
  local admitted = tonumber(state[1] or 0)
  if admitted >= index then
    local target, paced = admission_target(KEYS[4], KEYS[5], now_ms, {opens_at, rate,
      tonumber(rule[6] or 0), tonumber(rule[7])},
      {index + 1, admitted, tonumber(state[2] or 0), tonumber(state[3] or 0),
      tonumber(state[4] or 0)})
    if target > admitted then
      admit_to(KEYS[2], KEYS[4], target, paced, now_ms)
      redis.call('ZADD', KEYS[6], index, index)
      return {PASSED, index}
    end
  end
end
return {JOINED, index}
