-- ticket_many.lua: sell seats on a train run to a batch of purchases, in
-- order, in one atomic step; each gets exactly what ticket.lua alone would
-- have answered it at that point (sell.lua's and seats.lua's rules, put
-- before this file by src/scripts.rs with the reply codes).
--
-- KEYS[1..7] as in sell.lua, KEYS[8] the tickets, KEYS[9] the seats'
-- scratch key, KEYS[10..] the run's every seat map, class by class (class c
-- on segment s at 10 + c * segments + s): a batch's legs differ, so every
-- map is declared
-- ARGV[1] node id, ARGV[2] and ARGV[3] the run's classes and segments as
-- the caller declared its maps (a different shape is refused: 'stale
-- seat-map shape', and the caller reads it again), then nine per purchase
-- (ticket.lua's ARGV[2..10], in its order):
-- user id ('' when none), request id, admitted position ('' when none),
-- class index, from, to, passengers, the preferred letters as bits, and
-- the order it replaces ('' for none)
--
-- Returns {code, order_id, remaining, ticket, …} (four per purchase, in
-- order), then the last order sequence handed out.
local PER = 9
local node = ARGV[1]
local replies = {}
local sale = open_sale() and train
-- Tickets sold, for one HSET at the end; the scratch key, deleted once.
-- (pending: order -> ticket, for a replay later in the same batch).
local tickets, pending = {}, {}
keep_scratch = true
if sale then
  use_maps_from(10)
  local classes = tonumber(redis.call('HGET', KEYS[1], 'train_classes') or 0)
  if classes ~= tonumber(ARGV[2]) or run_segments ~= tonumber(ARGV[3]) then
    return redis.error_reply('ticket_many.lua: stale seat-map shape')
  end
  if #KEYS ~= 9 + classes * run_segments then
    return redis.error_reply('ticket_many.lua: the run\'s seat maps must be declared')
  end
end
for i = 4, #ARGV, PER do
  local code, order, remaining, ticket = NO_SUCH_SALE, '', 0, nil
  local class = tonumber(ARGV[i + 3])
  local from, to, k = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
  local prefer = tonumber(ARGV[i + 7]) or 0
  if sale and class_shape(class) and to <= run_segments then
    replacing = ARGV[i + 8]
    code, order, remaining, ticket = sell_one(ARGV[i], ARGV[i + 1], node, ARGV[i + 2], function()
      return take_seats(class, from, to, k, prefer)
    end)
    if code == SOLD then
      tickets[#tickets + 1] = order
      tickets[#tickets + 1] = ticket
      pending[order] = ticket
    elseif code == REPLAYED then
      ticket = pending[order] or redis.call('HGET', KEYS[8], order)
    end
  end
  replies[#replies + 1] = code
  replies[#replies + 1] = order
  replies[#replies + 1] = remaining
  replies[#replies + 1] = ticket or ''
end
if sale then
  close_sale()
  drop_scratch()
  if #tickets > 0 then
    redis.call('HSET', KEYS[8], unpack(tickets))
  end
end
replies[#replies + 1] = string.format('%d', seq or 0)
return replies
