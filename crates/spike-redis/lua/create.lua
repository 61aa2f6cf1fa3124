-- create.lua: create (or, forced, replace) one event's sale.
--
-- KEYS[1..5] as in release.lua (sale, buyers, requests, orders, released)
-- KEYS[6..9] the waiting room's (queue, places, steps, bought)
-- ARGV[1] '1' to replace an existing sale, ARGV[2] total, ARGV[3] per-user
-- limit (0 = anonymous), ARGV[4] opens_at_ms (0 = open now),
-- ARGV[5] payment_window_ms, ARGV[6] token_auth (1 = buyers need a token),
-- ARGV[7] event id, ARGV[8] queue_admit_rate (0 = no waiting room),
-- ARGV[9] queue_max_active (0 = no cap), ARGV[10] queue_admit_window_ms,
-- ARGV[11] queue_joins_open_at_ms (0 = from now), ARGV[12] the sale's life
-- (a number drawn at creation: order keys are bound to it)
-- KEYS[10] spike:{E}:tickets (a train run's; see ticket.lua)
-- KEYS[11..10+ARGV[14]] the old sale's seat maps, deleted (its every map, as
--            the sale hash lays them out: a different count is refused)
-- KEYS[11+ARGV[14]..] the new run's seat maps, class by class
-- ARGV[13] a train run's layout ('' for other sales), ARGV[14] how many old
-- maps are declared, ARGV[15] its segments, ARGV[16..] each class's shape
-- '<carriages> <seats per carriage>', kept as field 'class:<index>': every
-- map is made full length (all free)
--
-- Returns CREATED, or EXISTS when a sale exists and ARGV[1] is not '1'
-- (constants declared by the prelude of src/scripts.rs, CreateCode there).
if redis.call('EXISTS', KEYS[1]) == 1 and ARGV[1] ~= '1' then
  return EXISTS
end
local old = redis.call('HMGET', KEYS[1], 'train_classes', 'train_segments')
local old_maps = tonumber(ARGV[14])
local classes, segments = #ARGV - 15, tonumber(ARGV[15])
if old_maps ~= tonumber(old[1] or 0) * tonumber(old[2] or 0)
    or #KEYS ~= 10 + old_maps + classes * segments then
  return redis.error_reply('create.lua: the old and new seat maps must be declared')
end
for i = 11, 10 + old_maps do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
  KEYS[10])
for class = 0, classes - 1 do
  for segment = 0, segments - 1 do
    local carriages, per = string.match(ARGV[16 + class], '^(%d+) (%d+)$')
    redis.call('SETBIT', KEYS[11 + old_maps + class * segments + segment], carriages * per - 1, 0)
  end
  redis.call('HSET', KEYS[1], 'class:' .. class, ARGV[16 + class])
end
redis.call('HSET', KEYS[1],
  'total', ARGV[2], 'sold', 0, 'order_seq', 0, 'per_user_limit', ARGV[3],
  'opens_at_ms', ARGV[4], 'payment_window_ms', ARGV[5], 'token_auth', ARGV[6], 'event', ARGV[7],
  'queue_admit_rate', ARGV[8], 'queue_max_active', ARGV[9], 'queue_admit_window_ms', ARGV[10],
  'queue_joins_open_at_ms', ARGV[11], 'life', ARGV[12], 'train', ARGV[13], 'train_classes', classes,
  'train_segments', segments)
return CREATED
