-- snapshot.lua: one consistent view of an event's sale.
--
-- KEYS[1..5] as in release.lua (sale, buyers, requests, orders, released)
-- Returns {} when there is no such sale, else
-- {total, sold, per_user_limit, opens_at_ms, payment_window_ms, token_auth,
--  buyers, stream_length} (token_auth 0 for sales created before it existed).
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold', 'per_user_limit', 'opens_at_ms',
  'payment_window_ms', 'token_auth')
if not sale[1] then
  return {}
end
return {
  tonumber(sale[1]), tonumber(sale[2]), tonumber(sale[3]), tonumber(sale[4]), tonumber(sale[5]),
  tonumber(sale[6] or 0), redis.call('HLEN', KEYS[2]), redis.call('XLEN', KEYS[4])
}
