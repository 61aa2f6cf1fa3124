-- snapshot.lua: one consistent view of an event's sale.
--
-- KEYS[1..5] as in release.lua (sale, buyers, requests, orders, released)
-- Returns {} when there is no such sale, else the sale's rules, one per
-- name of RULES in its order (declared by the prelude of src/scripts.rs,
-- from the sale record's schema; 0 for a rule the sale was created
-- before), then {sold, buyers, stream_length, train} (train: a train run's
-- layout, '' for other sales).
local rules = redis.call('HMGET', KEYS[1], unpack(RULES))
local sale = redis.call('HMGET', KEYS[1], 'sold', TRAIN_FIELD)
if not rules[1] then
  return {}
end
local reply = {}
for i = 1, #RULES do
  reply[i] = tonumber(rules[i] or 0)
end
reply[#RULES + 1] = tonumber(sale[1])
reply[#RULES + 2] = redis.call('HLEN', KEYS[2])
reply[#RULES + 3] = redis.call('XLEN', KEYS[4])
reply[#RULES + 4] = sale[2] or ''
return reply
