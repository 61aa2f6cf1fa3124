-- queue_tick.lua: one admission step of an event's waiting room, which any
-- node may take at any time. At the opening it seals the waiting room (as
-- queue_join.lua does); then, until the sale sells out, it moves `admitted`
-- as far as admission.lua's rule allows (not while an operator paused the
-- sale). The same steps as the embedded
-- `Book::tick_queue` (spike-core/src/memory.rs).
--
-- KEYS[1] spike:{E}:sale          hash: total, sold, opens_at_ms, queue_* rules
-- KEYS[2] spike:{E}:queue         hash: seed, early, sealed_at_ms (once sealed),
--                                 admitted, paced
-- KEYS[3] spike:{E}:queue:places  hash: user -> join index
-- KEYS[4] spike:{E}:queue:steps   sorted set: member admitted, score the time (ms)
-- KEYS[5] spike:{E}:queue:bought  sorted set: "position user" by position
-- ARGV[1] a seed for the shuffle (used if this call seals)
-- ARGV[2] return the steps taken at or after this time (ms)
--
-- Returns {code, joined, seed ('' until sealed), early, admitted, now_ms,
-- remaining, {at_ms, admitted, at_ms, admitted, ...}, active}, code TICKED, or
-- NO_QUEUE (for no sale too) with zeros (TickCode in src/scripts.rs).
local rule = redis.call('HMGET', KEYS[1], 'total', 'sold', 'opens_at_ms', 'queue_admit_rate',
  'queue_max_active', 'queue_admit_window_ms', 'paused')
if not rule[1] or tonumber(rule[4] or 0) == 0 then
  return {NO_QUEUE, 0, '', 0, 0, 0, 0, {}, 0}
end
local total, sold, opens_at = tonumber(rule[1]), tonumber(rule[2]), tonumber(rule[3])
local rate, max_active, window = tonumber(rule[4]), tonumber(rule[5] or 0), tonumber(rule[6])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local joined = redis.call('HLEN', KEYS[3])
if now_ms >= opens_at and redis.call('HEXISTS', KEYS[2], 'seed') == 0 then
  seal(KEYS[2], KEYS[3], ARGV[1], now_ms)
end
local state = redis.call('HMGET', KEYS[2], 'seed', 'early', 'admitted', 'paced', 'sealed_at_ms',
  'rate_changed_at_ms')
local admitted = tonumber(state[3] or 0)
if state[1] and sold < total and rule[7] ~= '1' then
  local target, paced = admission_target(KEYS[4], KEYS[5], now_ms, {opens_at, rate, max_active,
    window}, {joined, admitted, tonumber(state[4] or 0), tonumber(state[5] or 0),
    tonumber(state[6] or 0)})
  if target > admitted then
    admitted = target
    admit_to(KEYS[2], KEYS[4], target, paced, now_ms)
  end
end
local raw = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[2], '+inf', 'WITHSCORES')
local steps = {}
for i = 1, #raw, 2 do
  steps[#steps + 1] = tonumber(raw[i + 1])
  steps[#steps + 1] = tonumber(raw[i])
end
return {TICKED, joined, state[1] or '', tonumber(state[2] or 0), admitted, now_ms,
  math.max(0, total - sold), steps, active_count(KEYS[4], KEYS[5], now_ms, window, admitted)}
