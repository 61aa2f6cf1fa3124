-- sell.lua: the rules of selling seats, shared by buy.lua (one purchase) and
-- buy_many.lua (a batch of one event's purchases). It defines functions only;
-- src/scripts.rs puts it after the reply codes' prelude and before the script
-- that uses it.
--
-- One call reads the sale's rules and counters once (open_sale), applies each
-- purchase in order exactly as if it came alone (sell_one), and writes the
-- counters, the buyer index, the request index and the waiting room's
-- "bought" set once at its end (close_sale). Only the stream takes one
-- command per sale. The single source of truth for "sold < total"; the
-- articles' version compared `total >= sold` and sold one seat too many.
--
-- KEYS[1] spike:{E}:sale      hash: total, sold, order_seq, per_user_limit (0 = anonymous), opens_at_ms, event,
--                             train_classes (0 unless a train run; see ticket.lua),
--                             paused ('1' while an operator paused the sale; control.lua)
-- KEYS[2] spike:{E}:buyers    hash: user -> space-separated order ids
-- KEYS[3] spike:{E}:requests  hash: request id -> "order_id user_id" (user '' when none)
-- KEYS[4] spike:{E}:orders    stream: one entry per sold seat, id '<sequence>-0'
-- KEYS[5] spike:{E}:released  (unused here; see release.lua)
-- KEYS[6] spike:{E}:queue         hash: the waiting room's counters (admitted),
--                                 and 'revoked:<user>' for each revoked admission
-- KEYS[7] spike:{E}:queue:bought  sorted set: "position user" by position

-- The sale as this call sells it: its rules, its counters and the time,
-- read once (open_sale); then what the call has read or changed so far.
-- Script-level locals, which sell_one and close_sale share as upvalues.
local total, sold, sold_before, limit, opens_at, event, queued, seq, now_ms, admitted, train
local paused
-- request id -> its entry (false: none), as read or written by this call
local requests = {}
-- field, value pairs for the request index
local request_writes = {}
-- user -> space-separated order ids (false: none), as read or written
local held_orders = {}
-- users whose held orders changed
local held_changed = {}
-- score, member pairs for the waiting room's "bought" set
local bought = {}
-- a change's old order, which the per-user limit does not count ('' none;
-- ticket.lua sets it)
local replacing = ''

-- Reads the sale; false when there is no such sale.
local function open_sale()
  local fields = redis.call('HMGET', KEYS[1], 'total', 'sold', 'per_user_limit', 'opens_at_ms',
    'event', 'queue_admit_rate', 'order_seq', 'train_classes', 'paused')
  if not fields[1] then
    return false
  end
  local now = redis.call('TIME')
  total = tonumber(fields[1])
  sold = tonumber(fields[2])
  sold_before = sold
  limit = tonumber(fields[3])
  opens_at = tonumber(fields[4])
  event = fields[5]
  queued = tonumber(fields[6] or 0) > 0
  seq = tonumber(fields[7] or 0)
  train = tonumber(fields[8] or 0) > 0
  paused = fields[9] == '1'
  now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  return true
end

-- Seats left as this call has counted them.
local function remaining_now()
  if sold >= total then
    return 0
  end
  return total - sold
end

-- The request index's entry of `request` ("order user"), or false.
local function request_entry(request)
  local earlier = requests[request]
  if earlier == nil then
    earlier = redis.call('HGET', KEYS[3], request)
    requests[request] = earlier
  end
  return earlier
end

-- `user`'s held orders (space-separated ids), or false.
local function held_by(user)
  local held = held_orders[user]
  if held == nil then
    held = redis.call('HGET', KEYS[2], user)
  end
  return held
end

-- `user`'s latest order when they hold as many as the sale allows, else nil
-- (never on an anonymous sale). A change's old order does not count.
local function at_limit(user)
  if limit == 0 then
    return nil
  end
  local held = held_by(user)
  if not held then
    return nil
  end
  local count, last = 0, ''
  for id in string.gmatch(held, '%S+') do
    if id ~= replacing then
      count = count + 1
      last = id
    end
  end
  if count >= limit then
    return last
  end
  return nil
end

-- Records one sale: the next order, the buyer's orders, the request index
-- and the stream entry (with the ticket, on a train run). Returns the order.
local function record_order(user, request, node, ticket)
  seq = seq + 1
  sold = sold + 1
  -- Formatted as an integer: Lua's own number-to-text conversion gives 14
  -- significant digits, and a recovered sale's sequences have 16.
  local sequence = string.format('%d', seq)
  local order = event .. '-' .. sequence
  if limit > 0 then
    local held = held_by(user)
    if held then
      held_orders[user] = held .. ' ' .. order
    else
      held_orders[user] = order
    end
    held_changed[#held_changed + 1] = user
  end
  local entry = order .. ' ' .. user
  requests[request] = entry
  request_writes[#request_writes + 1] = request
  request_writes[#request_writes + 1] = entry
  -- The entry id is the order's sequence, so an order can be found by its id.
  if ticket then
    redis.call('XADD', KEYS[4], sequence .. '-0', 'order', order, 'user', user, 'request', request,
      'node', node, 'sold_at_ms', now_ms, 'ticket', ticket)
  else
    redis.call('XADD', KEYS[4], sequence .. '-0', 'order', order, 'user', user, 'request', request,
      'node', node, 'sold_at_ms', now_ms)
  end
  return order
end

-- Sells one seat to one purchase, or says why not: returns code, order,
-- remaining, and the ticket take_seats gave (the codes being the prelude's
-- BuyCode constants). take_seats, given by ticket.lua for a train run, picks
-- and marks the seats (returning the ticket) or returns nil: sold out for
-- that leg. Without it, one seat of the counter is sold.
--   SOLD (order) | REPLAYED: an earlier success of this request (order)
--   SOLD_OUT | LIMIT_REACHED (the user's latest order) | NOT_OPEN
--   USER_REQUIRED
--   REQUEST_ID_TAKEN: this request id already bought for another buyer
--   NOT_ADMITTED: a queued sale, and no admitted position came with it (or
--   an operator revoked the buyer's admission)
--   PAUSED: an operator paused the sale
local function sell_one(user, request, node, position_arg, take_seats)
  local remaining = remaining_now()
  local earlier = request_entry(request)
  if earlier then
    local earlier_order, earlier_user = string.match(earlier, '^(%S+) ?(.*)$')
    if earlier_user ~= user then
      return REQUEST_ID_TAKEN, '', remaining
    end
    return REPLAYED, earlier_order, remaining
  end
  if paused then
    return PAUSED, '', remaining
  end
  if now_ms < opens_at then
    return NOT_OPEN, '', remaining
  end

  local position = tonumber(position_arg)
  if limit > 0 then
    if user == '' then
      return USER_REQUIRED, '', remaining
    end
    if queued then
      if admitted == nil then
        admitted = tonumber(redis.call('HGET', KEYS[6], 'admitted') or 0)
      end
      if not position or position >= admitted
          or redis.call('HEXISTS', KEYS[6], 'revoked:' .. user) == 1 then
        return NOT_ADMITTED, '', remaining
      end
    end
    local last = at_limit(user)
    if last then
      return LIMIT_REACHED, last, remaining
    end
  end

  if sold >= total then
    return SOLD_OUT, '', 0
  end
  local ticket = nil
  if take_seats then
    ticket = take_seats()
    if not ticket then
      return SOLD_OUT, '', remaining
    end
  end

  local order = record_order(user, request, node, ticket)
  if limit > 0 and queued then
    bought[#bought + 1] = position
    bought[#bought + 1] = string.format('%d', position) .. ' ' .. user
  end
  return SOLD, order, remaining_now(), ticket
end

-- Writes what this call sold: counters, buyer index, request index, and the
-- waiting room's "bought" set (a position keeps its first buyer: NX).
local function close_sale()
  if sold == sold_before then
    return
  end
  redis.call('HSET', KEYS[1], 'sold', string.format('%d', sold), 'order_seq', string.format('%d', seq))
  if #request_writes == 2 then
    redis.call('HSET', KEYS[3], request_writes[1], request_writes[2])
  else
    redis.call('HSET', KEYS[3], unpack(request_writes))
  end
  local changed = #held_changed
  if changed == 1 then
    local user = held_changed[1]
    redis.call('HSET', KEYS[2], user, held_orders[user])
  elseif changed > 1 then
    local pairs_ = {}
    for i = 1, changed do
      local user = held_changed[i]
      pairs_[2 * i - 1] = user
      pairs_[2 * i] = held_orders[user]
    end
    redis.call('HSET', KEYS[2], unpack(pairs_))
  end
  if #bought > 0 then
    redis.call('ZADD', KEYS[7], 'NX', unpack(bought))
  end
end
