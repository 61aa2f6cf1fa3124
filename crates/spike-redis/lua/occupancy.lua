-- occupancy.lua: one consistent read of a train run's seats.
--
-- KEYS[1] spike:{E}:sale
-- KEYS[2..] the run's every seat map, class by class (as in release.lua:
--           class c on segment s at 2 + c * segments + s)
--
-- Returns {} when there is no such sale or it is not a train run, else
-- {order_seq, layout, map of class 0 segment 0, … segment S-1, class 1 …}:
-- all strings, a missing map ''.
local sale = redis.call('HMGET', KEYS[1], 'order_seq', 'train', 'train_classes', 'train_segments')
local classes = tonumber(sale[3] or 0)
if not sale[2] or classes == 0 then
  return {}
end
local segments = tonumber(sale[4])
if #KEYS ~= 1 + classes * segments then
  return redis.error_reply('occupancy.lua: the run\'s seat maps must be declared')
end
local reply = {string.format('%d', tonumber(sale[1])), sale[2]}
for i = 2, #KEYS do
  reply[#reply + 1] = redis.call('GET', KEYS[i]) or ''
end
return reply
