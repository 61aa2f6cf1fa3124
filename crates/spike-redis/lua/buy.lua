-- buy.lua: sell one seat of one event, atomically, by sell.lua's rules
-- (which src/scripts.rs puts before this file, with the reply codes).
--
-- KEYS[1..7] as in sell.lua
-- ARGV[1] user id ('' when none), ARGV[2] request id, ARGV[3] node id,
-- ARGV[4] the buyer's admitted position ('' when none; a queued sale needs one)
--
-- Returns {code, order_id, remaining}: sell_one's, or NO_SUCH_SALE (also for
-- a train run, which sells only seats: ticket.lua).
if not open_sale() or train then
  return {NO_SUCH_SALE, '', 0}
end
local code, order, remaining = sell_one(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
close_sale()
return {code, order, remaining}
