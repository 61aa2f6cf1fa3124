-- release.lua: give one sold seat back to central stock (an order expired or
-- was cancelled), exactly once: a second release of the same order changes
-- nothing, so a pipeline that crashed between its database update and this
-- call can simply call it again.
--
-- KEYS[1..4] as in buy.lua (sale, buyers, requests, orders)
-- KEYS[5] spike:{E}:released  set: order ids already given back
-- KEYS[6] spike:{E}:tickets   hash: a train run's orders and their seats (ticket.lua)
-- KEYS[7..] a train run's every seat map, class by class (map of class c on
--           segment s at 7 + c * segments + s; none for other sales): a
--           train order's seats are cleared on exactly the segments it set,
--           and its ticket leaves the hash
-- ARGV[1] order id, ARGV[2] its user ('' when none), ARGV[3] its request id
--
-- Returns {code, remaining}, the codes being constants declared by the
-- prelude that src/scripts.rs puts before this file (ReleaseCode there):
--   RELEASED | ALREADY_RELEASED | NOT_SOLD (no such sold order) | NO_SUCH_SALE
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold', 'train_classes', 'train_segments')
if not sale[1] then
  return {NO_SUCH_SALE, 0}
end
local segments = tonumber(sale[4] or 0)
if #KEYS ~= 6 + tonumber(sale[3] or 0) * segments then
  return redis.error_reply('release.lua: the run\'s seat maps must be declared')
end
local total, sold = tonumber(sale[1]), tonumber(sale[2])
local order, user, request = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SISMEMBER', KEYS[5], order) == 1 then
  return {ALREADY_RELEASED, total - sold}
end
-- The order must be one this sale sold to this request, for this user.
if redis.call('HGET', KEYS[3], request) ~= order .. ' ' .. user then
  return {NOT_SOLD, total - sold}
end
if user ~= '' then
  local held = redis.call('HGET', KEYS[2], user)
  if held then
    local kept = {}
    for id in string.gmatch(held, '%S+') do
      if id ~= order then table.insert(kept, id) end
    end
    if #kept == 0 then
      redis.call('HDEL', KEYS[2], user)
    else
      redis.call('HSET', KEYS[2], user, table.concat(kept, ' '))
    end
  end
end
redis.call('HDEL', KEYS[3], request)
local ticket = redis.call('HGET', KEYS[6], order)
if ticket then
  local class, from, to, seats = string.match(ticket, '^(%d+)/(%d+)/(%d+)/(.+)$')
  for seat in string.gmatch(seats, '%d+') do
    for segment = tonumber(from), tonumber(to) - 1 do
      redis.call('SETBIT', KEYS[7 + tonumber(class) * segments + segment], seat, 0)
    end
  end
  redis.call('HDEL', KEYS[6], order)
end
redis.call('SADD', KEYS[5], order)
redis.call('HINCRBY', KEYS[1], 'sold', -1)
return {RELEASED, total - sold + 1}
