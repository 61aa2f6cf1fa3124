-- create.lua: create (or, forced, replace) one event's sale.
--
-- KEYS[1..5] as in release.lua (sale, buyers, requests, orders, released)
-- KEYS[6..10] the waiting room's (queue, places, steps, bought, passed)
-- KEYS[11] spike:{E}:tickets (a train run's; see ticket.lua)
-- KEYS[12..14] the waitlist's (waitlist, waitlist:users, waitlist:queue;
--            see waitlist_rules.lua)
-- KEYS[15] spike:{E}:operator_log (see control.lua)
-- KEYS[16..15+old maps] the old sale's seat maps, deleted (its every map, as
--            the sale hash lays them out: a different count is refused)
-- KEYS[16+old maps..] the new run's seat maps, class by class
--
-- ARGV[1] '1' to replace an existing sale, ARGV[2] the event id,
-- ARGV[RULES_AT..] the sale's rules, one per name of RULES, in its order
-- (both declared by the prelude of src/scripts.rs, from the sale record's
-- schema in spike-core), then, from TRAIN_AT: a train run's layout ('' for
-- other sales), how many old maps are declared, its segments, and each
-- class's shape '<carriages> <seats per carriage>', kept as field
-- 'class:<index>': every map is made full length (all free)
--
-- Returns CREATED, or EXISTS when a sale exists and ARGV[1] is not '1'
-- (constants declared by the prelude of src/scripts.rs, CreateCode there).
if redis.call('EXISTS', KEYS[1]) == 1 and ARGV[1] ~= '1' then
  return EXISTS
end
local TRAIN_AT = RULES_AT + #RULES
local old = redis.call('HMGET', KEYS[1], 'train_classes', 'train_segments')
local old_maps = tonumber(ARGV[TRAIN_AT + 1])
local first_class = TRAIN_AT + 3
local classes, segments = #ARGV - first_class + 1, tonumber(ARGV[TRAIN_AT + 2])
if old_maps ~= tonumber(old[1] or 0) * tonumber(old[2] or 0)
    or #KEYS ~= 15 + old_maps + classes * segments then
  return redis.error_reply('create.lua: the old and new seat maps must be declared')
end
for i = 16, 15 + old_maps do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
  KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15])
for class = 0, classes - 1 do
  local shape = ARGV[first_class + class]
  for segment = 0, segments - 1 do
    local carriages, per = string.match(shape, '^(%d+) (%d+)$')
    redis.call('SETBIT', KEYS[16 + old_maps + class * segments + segment], carriages * per - 1, 0)
  end
  redis.call('HSET', KEYS[1], 'class:' .. class, shape)
end
for i, name in ipairs(RULES) do
  redis.call('HSET', KEYS[1], name, ARGV[RULES_AT + i - 1])
end
redis.call('HSET', KEYS[1], 'sold', 0, 'order_seq', 0, 'event', ARGV[2],
  TRAIN_FIELD, ARGV[TRAIN_AT], 'train_classes', classes, 'train_segments', segments)
return CREATED
