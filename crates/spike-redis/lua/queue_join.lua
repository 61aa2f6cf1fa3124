-- queue_join.lua: put one buyer in an event's waiting room, or find their
-- place: one place per buyer. Once the sale has opened, the waiting room is
-- sealed first (the seed of the shuffle and how many joined before), so
-- that only who joined before the opening is shuffled. The same steps as
-- the embedded `Book::join_queue` (spike-core/src/memory.rs).
--
-- KEYS[1] spike:{E}:sale          hash: opens_at_ms, queue_admit_rate, queue_joins_open_at_ms
-- KEYS[2] spike:{E}:queue         hash: seed, early (once sealed), admitted
-- KEYS[3] spike:{E}:queue:places  hash: user -> join index
-- ARGV[1] user id, ARGV[2] a seed for the shuffle (used if this call seals)
--
-- Returns {code, number}, the codes being constants declared by the prelude
-- that src/scripts.rs puts before this file (JoinCode there):
--   JOINED (the join index) | NOT_YET_OPEN (when joining starts, ms)
--   NO_QUEUE | NO_SUCH_SALE
local rule = redis.call('HMGET', KEYS[1], 'total', 'opens_at_ms', 'queue_admit_rate',
  'queue_joins_open_at_ms')
if not rule[1] then
  return {NO_SUCH_SALE, 0}
end
if tonumber(rule[3] or 0) == 0 then
  return {NO_QUEUE, 0}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms >= tonumber(rule[2]) and redis.call('HEXISTS', KEYS[2], 'seed') == 0 then
  redis.call('HSET', KEYS[2], 'seed', ARGV[2], 'early', redis.call('HLEN', KEYS[3]))
end
local place = redis.call('HGET', KEYS[3], ARGV[1])
if place then
  return {JOINED, tonumber(place)}
end
local joins_open_at = tonumber(rule[4] or 0)
if now_ms < joins_open_at then
  return {NOT_YET_OPEN, joins_open_at}
end
local index = redis.call('HLEN', KEYS[3])
redis.call('HSET', KEYS[3], ARGV[1], index)
return {JOINED, index}
