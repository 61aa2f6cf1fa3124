-- ack.lua: an order writer committed these entries to the database; they
-- leave the stream in the same step, so the stream holds exactly the sold
-- seats that are not durable orders yet.
--
-- KEYS[1] spike:{E}:orders   ARGV[1] consumer group, ARGV[2..] entry ids
-- Returns how many entries were still in the stream.
--
-- Ids go to XACK and XDEL in chunks of CHUNK: Lua's unpack takes a bounded
-- number of values (about 8,000 on Redis's Lua), so a batch of any size is
-- acknowledged whole, and still in one atomic step.
local CHUNK = 1000
local deleted = 0
for first = 2, #ARGV, CHUNK do
  local last = math.min(first + CHUNK - 1, #ARGV)
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, first, last))
  deleted = deleted + redis.call('XDEL', KEYS[1], unpack(ARGV, first, last))
end
return deleted
