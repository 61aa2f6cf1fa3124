-- queue_tick.lua: one admission step of an event's waiting room, which any
-- node may take at any time. At the opening it seals the waiting room (as
-- queue_join.lua does); then, until the sale sells out, it moves `admitted`
-- as far as the rules allow: never back, never past who joined, never past
-- the rate's token bucket (`paced`: milliseconds since the opening times the
-- rate that the admissions used, 1,000 each; the bucket holds at most
-- ADMISSION_BURST_MS of the rate), and with queue_max_active, never past that
-- many admitted buyers who have neither bought nor let their admission
-- expire. The same steps as the embedded `Book::tick_queue`, and
-- `QueueConfig::admission_target` (spike-core/src/queue.rs).
--
-- KEYS[1] spike:{E}:sale          hash: total, sold, opens_at_ms, queue_* rules
-- KEYS[2] spike:{E}:queue         hash: seed, early (once sealed), admitted, paced
-- KEYS[3] spike:{E}:queue:places  hash: user -> join index
-- KEYS[4] spike:{E}:queue:steps   sorted set: member admitted, score the time (ms)
-- KEYS[5] spike:{E}:queue:bought  sorted set: "position user" by position
-- ARGV[1] a seed for the shuffle (used if this call seals)
-- ARGV[2] return the steps taken at or after this time (ms)
--
-- Returns {code, joined, seed ('' until sealed), early, admitted, now_ms,
-- remaining, {at_ms, admitted, at_ms, admitted, ...}}, code TICKED, or
-- NO_QUEUE (for no sale too) with zeros (TickCode in src/scripts.rs).
local rule = redis.call('HMGET', KEYS[1], 'total', 'sold', 'opens_at_ms', 'queue_admit_rate',
  'queue_max_active', 'queue_admit_window_ms')
if not rule[1] or tonumber(rule[4] or 0) == 0 then
  return {NO_QUEUE, 0, '', 0, 0, 0, 0, {}}
end
local total, sold, opens_at = tonumber(rule[1]), tonumber(rule[2]), tonumber(rule[3])
local rate, max_active, window = tonumber(rule[4]), tonumber(rule[5] or 0), tonumber(rule[6])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local joined = redis.call('HLEN', KEYS[3])
if now_ms >= opens_at and redis.call('HEXISTS', KEYS[2], 'seed') == 0 then
  redis.call('HSET', KEYS[2], 'seed', ARGV[1], 'early', joined)
end
local state = redis.call('HMGET', KEYS[2], 'seed', 'early', 'admitted', 'paced')
local admitted = tonumber(state[3] or 0)
if state[1] and sold < total then
  -- Integers below 2^53 (a 30-day sale at the fastest rate): exact here.
  local elapsed = (now_ms - opens_at) * rate
  local start = math.max(tonumber(state[4] or 0), elapsed - ADMISSION_BURST_MS * rate)
  local target = math.min(joined, admitted + math.floor((elapsed - start) / 1000))
  if max_active > 0 then
    local expired = 0
    local last = redis.call('ZREVRANGEBYSCORE', KEYS[4], now_ms - window, '-inf', 'LIMIT', 0, 1)
    if last[1] then expired = tonumber(last[1]) end
    local bought = redis.call('ZCARD', KEYS[5])
    local bought_expired = 0
    if expired > 0 then bought_expired = redis.call('ZCOUNT', KEYS[5], 0, expired - 1) end
    local active = math.max(0, admitted - bought - (expired - bought_expired))
    target = math.min(target, admitted - active + max_active)
  end
  if target > admitted then
    local paced = start + (target - admitted) * 1000
    admitted = target
    redis.call('HSET', KEYS[2], 'admitted', admitted, 'paced', string.format('%d', paced))
    redis.call('ZADD', KEYS[4], now_ms, admitted)
  end
end
local raw = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[2], '+inf', 'WITHSCORES')
local steps = {}
for i = 1, #raw, 2 do
  steps[#steps + 1] = tonumber(raw[i + 1])
  steps[#steps + 1] = tonumber(raw[i])
end
return {TICKED, joined, state[1] or '', tonumber(state[2] or 0), admitted, now_ms,
  math.max(0, total - sold), steps}
