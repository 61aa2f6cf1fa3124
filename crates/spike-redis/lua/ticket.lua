-- ticket.lua: sell seats on a train run, atomically, by sell.lua's rules
-- (request id, opening, buyer, waiting room, per-user limit), then the
-- seats by seats.lua's rule (src/scripts.rs puts both before this file,
-- with the reply codes).
--
-- KEYS[1..7] as in sell.lua
-- KEYS[8] spike:{E}:tickets  hash: order id -> ticket '<class>/<from>/<to>/<seat>.<seat>…'
-- KEYS[9] spike:{E}:seats:scratch  the OR of a leg's maps, deleted before returning
-- KEYS[10..] the class's seat maps of the leg's segments, from..to-1 (every
--            key a script touches is declared, as Redis's contract asks)
-- ARGV[1] node id, ARGV[2] user id ('' when none), ARGV[3] request id,
-- ARGV[4] admitted position ('' when none), ARGV[5] class index,
-- ARGV[6] from station, ARGV[7] to station (from < to),
-- ARGV[8] passengers, ARGV[9] the preferred letters as bits (bit i for
-- letter i of the row, 0 for none: spike-core's SeatPreference::bits),
-- ARGV[10] a change's old order on this run, which the per-user limit does
-- not count ('' for a purchase).
--
-- Returns {code, order_id, remaining, ticket ('' when none), order_seq}:
-- sell_one's (SOLD_OUT: no room on that leg), or NO_SUCH_SALE (no sale, not
-- a train run, or no such class); order_seq is the last sequence handed out.
local class = tonumber(ARGV[5])
local from, to, k = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local prefer = tonumber(ARGV[9]) or 0
replacing = ARGV[10] or ''
if #KEYS ~= 9 + to - from then
  return redis.error_reply('ticket.lua: the leg\'s ' .. (to - from) .. ' seat maps must be declared')
end
seat_map = function(_, segment)
  return KEYS[10 + segment - from]
end
SCRATCH = KEYS[9]
if not class_shape(class) or not open_sale() or not train then
  return {NO_SUCH_SALE, '', 0, '', 0}
end

local code, order, remaining, ticket = sell_one(ARGV[2], ARGV[3], ARGV[1], ARGV[4], function()
  return take_seats(class, from, to, k, prefer)
end)
close_sale()
if code == SOLD then
  redis.call('HSET', KEYS[8], order, ticket)
elseif code == REPLAYED then
  ticket = redis.call('HGET', KEYS[8], order)
end
return {code, order, remaining, ticket or '', string.format('%d', seq)}
