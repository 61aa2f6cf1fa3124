-- ack.lua: an order writer committed these entries to the database; they
-- leave the stream in the same step, so the stream holds exactly the sold
-- seats that are not durable orders yet.
--
-- KEYS[1] spike:{E}:orders   ARGV[1] consumer group, ARGV[2..] entry ids
-- Returns how many entries were still in the stream.
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
