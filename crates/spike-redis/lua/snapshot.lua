-- snapshot.lua: one consistent view of an event's sale.
--
-- KEYS[1..5] as in release.lua (sale, buyers, requests, orders, released)
-- Returns {} when there is no such sale, else
-- {total, sold, per_user_limit, opens_at_ms, payment_window_ms, token_auth,
--  buyers, stream_length, queue_admit_rate, queue_max_active,
--  queue_admit_window_ms, queue_joins_open_at_ms, life, train} (token_auth,
-- the queue fields and life 0 for sales created before they existed; train,
-- the layout of a train run, '' for other sales).
local sale = redis.call('HMGET', KEYS[1], 'total', 'sold', 'per_user_limit', 'opens_at_ms',
  'payment_window_ms', 'token_auth', 'queue_admit_rate', 'queue_max_active',
  'queue_admit_window_ms', 'queue_joins_open_at_ms', 'train', 'life')
if not sale[1] then
  return {}
end
return {
  tonumber(sale[1]), tonumber(sale[2]), tonumber(sale[3]), tonumber(sale[4]), tonumber(sale[5]),
  tonumber(sale[6] or 0), redis.call('HLEN', KEYS[2]), redis.call('XLEN', KEYS[4]),
  tonumber(sale[7] or 0), tonumber(sale[8] or 0), tonumber(sale[9] or 0), tonumber(sale[10] or 0),
  tonumber(sale[12] or 0), sale[11] or ''
}
