-- admission.lua: the waiting room's admission rule, put before queue_tick.lua
-- and queue_join.lua by src/scripts.rs. The same rule as
-- `QueueConfig::admission_target` and `paced_after` (spike-core/src/queue/mod.rs):
-- `admitted` moves never back, never past who joined, never past the rate's
-- token bucket (`paced`: milliseconds since the opening times the rate that
-- the admissions used, 1,000 each; the bucket holds at most
-- ADMISSION_BURST_MS of the rate), and with a max_active cap, never past that
-- many admitted buyers who have neither bought nor let their admission
-- expire. The rate is counted from `rate_origin_ms` (queue/mod.rs): the
-- opening, or a bucket's worth before a later seal, so that the products
-- below stay integers under 2^53 (30 days at the fastest rate): exact; or,
-- once an operator changed the rate (control.lua), from that change, with
-- `paced` set back to 0 then: the new rate's bucket starts empty.
--
-- steps_key, bought_key: the room's steps and bought sorted sets; rule: the
-- sale's {opens_at, rate, max_active, window}; room: {joined, admitted,
-- paced, sealed_at, rate_changed_at}. Returns the target and the bucket's `paced` once
-- admitted is there.
-- Admitted buyers who have neither bought nor let their admission (`window`
-- ms) expire at `now_ms`: `AdmissionProgress::active` and `queue::active_at`.
local function active_count(steps_key, bought_key, now_ms, window, admitted)
  local expired = 0
  local last = redis.call('ZREVRANGEBYSCORE', steps_key, now_ms - window, '-inf', 'LIMIT', 0, 1)
  if last[1] then expired = tonumber(last[1]) end
  local bought = redis.call('ZCARD', bought_key)
  local bought_expired = 0
  if expired > 0 then bought_expired = redis.call('ZCOUNT', bought_key, 0, expired - 1) end
  return math.max(0, admitted - bought - (expired - bought_expired))
end

local function admission_target(steps_key, bought_key, now_ms, rule, room)
  local opens_at, rate, max_active, window = rule[1], rule[2], rule[3], rule[4]
  local joined, admitted, paced, sealed_at = room[1], room[2], room[3], room[4]
  local origin = math.max(opens_at, sealed_at - ADMISSION_BURST_MS, room[5])
  local elapsed = (now_ms - origin) * rate
  local start = math.max(paced, elapsed - ADMISSION_BURST_MS * rate)
  local target = math.min(joined, admitted + math.floor((elapsed - start) / 1000))
  if max_active > 0 then
    local active = active_count(steps_key, bought_key, now_ms, window, admitted)
    target = math.min(target, admitted - active + max_active)
  end
  target = math.max(target, admitted)
  return target, start + (target - admitted) * 1000
end

-- Seals the room at `now_ms` (once the sale has opened): the shuffle's seed,
-- how many joined before, and when.
local function seal(queue_key, places_key, seed, now_ms)
  redis.call('HSET', queue_key, 'seed', seed, 'early', redis.call('HLEN', places_key),
    'sealed_at_ms', now_ms)
end

-- Moves the room's `admitted` to `target` (with the bucket's `paced`), one
-- admission step at `now_ms`.
local function admit_to(queue_key, steps_key, target, paced, now_ms)
  redis.call('HSET', queue_key, 'admitted', target, 'paced', string.format('%d', paced))
  redis.call('ZADD', steps_key, now_ms, target)
end
