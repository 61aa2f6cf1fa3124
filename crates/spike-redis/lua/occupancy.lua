-- occupancy.lua: one consistent read of a train run's seats.
--
-- KEYS[1] spike:{E}:sale
-- ARGV[1] the seat-map prefix (maps as in ticket.lua)
--
-- Returns {} when there is no such sale or it is not a train run, else
-- {order_seq, layout, map of class 0 segment 0, … segment S-1, class 1 …}:
-- all strings, a missing map ''.
local sale = redis.call('HMGET', KEYS[1], 'order_seq', 'train', 'train_classes', 'train_segments')
local classes = tonumber(sale[3] or 0)
if not sale[2] or classes == 0 then
  return {}
end
local reply = {string.format('%d', tonumber(sale[1])), sale[2]}
for class = 0, classes - 1 do
  for segment = 0, tonumber(sale[4]) - 1 do
    reply[#reply + 1] = redis.call('GET', ARGV[1] .. class .. ':' .. segment) or ''
  end
end
return reply
