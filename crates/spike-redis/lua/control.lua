-- control.lua: an operator's control of one sale, applied and appended to
-- the sale's operator log in one step. The same steps as the embedded
-- `Book::control` (spike-core/src/memory/controls.rs); the entry's wire form
-- is `OperatorEntry::to_wire`'s (spike-core/src/control.rs).
--
-- KEYS[1] spike:{E}:sale          hash: total, queue_admit_rate, queue_max_active,
--                                 paused ('1' while paused: sell.lua refuses,
--                                 queue_tick.lua and queue_join.lua admit nobody)
-- KEYS[2] spike:{E}:queue         hash: paced, rate_changed_at_ms (the new rate's
--                                 bucket starts empty: admission.lua), and
--                                 'revoked:<user>' -> reason (sell.lua refuses)
-- KEYS[3] spike:{E}:operator_log  list: every control, oldest first
-- ARGV[1] the operator, ARGV[2] the action: pause | resume | admission | revoke
-- | reinstate;
-- admission: ARGV[3] the rate, ARGV[4] the cap (0: none);
-- revoke: ARGV[3] the buyer, ARGV[4] the reason; reinstate: ARGV[3] the buyer
--
-- Returns {code, index, entry}: APPLIED with the entry's index in the log
-- and its wire form, or NO_QUEUE | NO_SUCH_SALE with 0, '' (ControlCode in
-- src/scripts.rs).
local rule = redis.call('HMGET', KEYS[1], 'total', 'queue_admit_rate', 'queue_max_active')
if not rule[1] then
  return {NO_SUCH_SALE, 0, ''}
end
local action = ARGV[2]
if (action == 'admission' or action == 'revoke' or action == 'reinstate')
    and tonumber(rule[2] or 0) == 0 then
  return {NO_QUEUE, 0, ''}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local arguments = ''
if action == 'pause' then
  redis.call('HSET', KEYS[1], 'paused', 1)
elseif action == 'resume' then
  redis.call('HSET', KEYS[1], 'paused', 0)
elseif action == 'admission' then
  arguments = ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. rule[2] .. ' ' .. (rule[3] or '0')
  redis.call('HSET', KEYS[1], 'queue_admit_rate', ARGV[3], 'queue_max_active', ARGV[4])
  redis.call('HSET', KEYS[2], 'rate_changed_at_ms', now_ms, 'paced', 0)
elseif action == 'revoke' then
  arguments = ARGV[3] .. ' ' .. ARGV[4]
  redis.call('HSET', KEYS[2], 'revoked:' .. ARGV[3], ARGV[4])
elseif action == 'reinstate' then
  arguments = ARGV[3]
  redis.call('HDEL', KEYS[2], 'revoked:' .. ARGV[3])
else
  return redis.error_reply('control.lua: unknown action ' .. action)
end
local entry = string.format('%d', now_ms) .. ' ' .. ARGV[1] .. ' ' .. action
if arguments ~= '' then
  entry = entry .. ' ' .. arguments
end
local length = redis.call('RPUSH', KEYS[3], entry)
return {APPLIED, length - 1, entry}
