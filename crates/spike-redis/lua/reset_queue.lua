-- reset_queue.lua: a waiting room starts over after a recovery rebuilt its
-- sale (`CentralStock::reset_queue`): every key of the room is deleted, in
-- one step, but the operator's revocations ('revoked:<user>' fields of the
-- room's hash), which stand. The same as the embedded `reset_queue`
-- (spike-core/src/memory/mod.rs).
--
-- KEYS[1] spike:{E}:queue  hash: the room's counters, and the revocations
-- KEYS[2..] the room's other keys (places, steps, bought, passed, carried)
--
-- Returns the number of revocations kept.
local kept = {}
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 8) == 'revoked:' then
    kept[#kept + 1] = fields[i]
    kept[#kept + 1] = fields[i + 1]
  end
end
redis.call('DEL', unpack(KEYS))
-- In slices: unpack has a limit on how many values it spreads.
for first = 1, #kept, 200 do
  redis.call('HSET', KEYS[1], unpack(kept, first, math.min(first + 199, #kept)))
end
return #kept / 2
