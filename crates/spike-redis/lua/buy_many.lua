-- buy_many.lua: sell seats of one event to a batch of purchases, in order, in
-- one atomic step; each purchase gets exactly what buy.lua alone would have
-- answered it at that point (sell.lua's rules, put before this file by
-- src/scripts.rs with the reply codes).
--
-- KEYS[1..7] as in sell.lua
-- ARGV[1] node id, then three per purchase: user id ('' when none), request
-- id, admitted position ('' when none)
--
-- Returns {code, order_id, remaining, code, order_id, remaining, …}: one
-- triple per purchase, in order.
local node = ARGV[1]
local replies = {}
-- A train run sells only seats (ticket.lua): NO_SUCH_SALE here.
local sale = open_sale() and not train
for i = 2, #ARGV, 3 do
  local code, order, remaining = NO_SUCH_SALE, '', 0
  if sale then
    code, order, remaining = sell_one(ARGV[i], ARGV[i + 1], node, ARGV[i + 2])
  end
  replies[#replies + 1] = code
  replies[#replies + 1] = order
  replies[#replies + 1] = remaining
end
if sale then
  close_sale()
end
return replies
