-- buy.lua: sell one seat of one event, atomically. The single source of truth
-- for "sold < total"; the articles' version compared `total >= sold` and
-- sold one seat too many.
--
-- KEYS[1] spike:{E}:sale      hash: total, sold, order_seq, per_user_limit (0 = anonymous), opens_at_ms, event
-- KEYS[2] spike:{E}:buyers    hash: user -> space-separated order ids
-- KEYS[3] spike:{E}:requests  hash: request id -> "order_id user_id" (user '' when none)
-- KEYS[4] spike:{E}:orders    stream: one entry per sold seat, id '<sequence>-0'
-- KEYS[5] spike:{E}:released  (unused here; see release.lua)
-- KEYS[6] spike:{E}:queue         hash: the waiting room's counters (admitted)
-- KEYS[7] spike:{E}:queue:bought  sorted set: "position user" by position
-- ARGV[1] user id ('' when none), ARGV[2] request id, ARGV[3] node id,
-- ARGV[4] the buyer's admitted position ('' when none; a queued sale needs one)
--
-- Returns {code, order_id, remaining}, the codes being constants declared by
-- the prelude that src/scripts.rs puts before this file (BuyCode there):
--   SOLD (order) | REPLAYED: an earlier success of this request (order)
--   SOLD_OUT | LIMIT_REACHED (the user's latest order) | NOT_OPEN
--   USER_REQUIRED | NO_SUCH_SALE
--   REQUEST_ID_TAKEN: this request id already bought for another buyer
--   NOT_ADMITTED: a queued sale, and no admitted position came with it
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold', 'per_user_limit', 'opens_at_ms', 'event',
  'queue_admit_rate')
if not sale[1] then
  return {NO_SUCH_SALE, '', 0}
end
local total = tonumber(sale[1])
local sold = tonumber(sale[2])
local limit = tonumber(sale[3])
local opens_at = tonumber(sale[4])
local remaining = total - sold
if remaining < 0 then remaining = 0 end
local user, request, node = ARGV[1], ARGV[2], ARGV[3]

local earlier = redis.call('HGET', KEYS[3], request)
if earlier then
  local earlier_order, earlier_user = string.match(earlier, '^(%S+) ?(.*)$')
  if earlier_user ~= user then
    return {REQUEST_ID_TAKEN, '', remaining}
  end
  return {REPLAYED, earlier_order, remaining}
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms < opens_at then
  return {NOT_OPEN, '', remaining}
end

local held = nil
local queued = tonumber(sale[6] or 0) > 0
local position = tonumber(ARGV[4])
if limit > 0 then
  if user == '' then
    return {USER_REQUIRED, '', remaining}
  end
  if queued then
    local admitted = tonumber(redis.call('HGET', KEYS[6], 'admitted') or 0)
    if not position or position >= admitted then
      return {NOT_ADMITTED, '', remaining}
    end
  end
  held = redis.call('HGET', KEYS[2], user)
  if held then
    local count, last = 0, ''
    for id in string.gmatch(held, '%S+') do
      count = count + 1
      last = id
    end
    if count >= limit then
      return {LIMIT_REACHED, last, remaining}
    end
  end
end

if sold >= total then
  return {SOLD_OUT, '', 0}
end

-- Formatted as an integer: Lua's own number-to-text conversion gives 14
-- significant digits, and a recovered sale's sequences have 16.
local seq = string.format('%d', redis.call('HINCRBY', KEYS[1], 'order_seq', 1))
redis.call('HINCRBY', KEYS[1], 'sold', 1)
local order = sale[5] .. '-' .. seq
if limit > 0 then
  if held then
    redis.call('HSET', KEYS[2], user, held .. ' ' .. order)
  else
    redis.call('HSET', KEYS[2], user, order)
  end
  if queued then
    redis.call('ZADD', KEYS[7], 'NX', position, string.format('%d', position) .. ' ' .. user)
  end
end
redis.call('HSET', KEYS[3], request, order .. ' ' .. user)
-- The entry id is the order's sequence, so an order can be found by its id.
redis.call('XADD', KEYS[4], seq .. '-0', 'order', order, 'user', user, 'request', request,
  'node', node, 'sold_at_ms', now_ms)
return {SOLD, order, remaining - 1}
