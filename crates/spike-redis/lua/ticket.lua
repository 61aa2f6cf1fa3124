-- ticket.lua: sell seats on a train run, atomically, by sell.lua's rules
-- (request id, opening, buyer, waiting room, per-user limit; src/scripts.rs
-- puts them before this file, with the reply codes), then the seats.
--
-- Seats are kept per class and segment: the string at
-- 'spike:{E}:seats:<class>:<segment>' has bit i set (SETBIT order) when
-- seat i of the class is sold on that segment. A leg's free seats are the
-- zero bits of the OR of its segments' maps. The seats chosen are
-- spike-core's ClassOccupancy::find_seats, mirrored here:
-- - with a preference, first: the first free seat, or the first run of
--   free seats side by side in one row, holding a preferred letter;
-- - one passenger: the lowest free seat (BITPOS);
-- - several: the first run of that many free seats side by side in one row
--   (ROW seats a row: carriages, then rows, then letters in order); failing
--   that, the lowest free seats of the first carriage with enough of them.
--
-- KEYS[1..7] as in sell.lua
-- KEYS[8] spike:{E}:tickets  hash: order id -> ticket '<class>/<from>/<to>/<seat>.<seat>…'
-- KEYS[9] spike:{E}:seats:scratch  the OR of a leg's maps, deleted before returning
-- KEYS[10..] the class's seat maps of the leg's segments, from..to-1 (every
--            key a script touches is declared, as Redis's contract asks)
-- ARGV[1] user id ('' when none), ARGV[2] request id, ARGV[3] node id,
-- ARGV[4] admitted position ('' when none), ARGV[5] class index,
-- ARGV[6] from station, ARGV[7] to station (from < to),
-- ARGV[8] passengers, ARGV[9] the preferred letters as bits (bit i for
-- letter i of the row, 0 for none: spike-core's SeatPreference::bits). The class's shape is the sale hash's 'class:<index>',
-- '<carriages> <seats per carriage>' (create.lua).
--
-- Returns {code, order_id, remaining, ticket ('' when none), order_seq}:
-- sell_one's (SOLD_OUT: no room on that leg), or NO_SUCH_SALE (no sale, not
-- a train run, or no such class); order_seq is the last sequence handed out.
local ROW = 5
local class = ARGV[5]
local from, to, k = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local prefer = tonumber(ARGV[9]) or 0
if #KEYS ~= 9 + to - from then
  return redis.error_reply('ticket.lua: the leg\'s ' .. (to - from) .. ' seat maps must be declared')
end
local shape = redis.call('HGET', KEYS[1], 'class:' .. class)
if not shape or not open_sale() or not train then
  return {NO_SUCH_SALE, '', 0, '', 0}
end
local carriages, per = string.match(shape, '^(%d+) (%d+)$')
carriages, per = tonumber(carriages), tonumber(per)

-- The declared map of `segment` (one of from..to-1).
local function seat_map(segment)
  return KEYS[10 + segment - from]
end

-- Whether seat `seat` has one of the preferred letters (bit i of `prefer`
-- for letter i of the row; the row starts again in each carriage).
local function preferred(seat)
  return bit.band(prefer, bit.lshift(1, (seat % per) % ROW)) ~= 0
end

-- The seats for this purchase, or nil. Scans seat by seat, but jumps over
-- bytes of eight sold seats (string.find, in C), so that a train that fills
-- from the front costs what its free part does.
local function choose(map_key)
  local total = carriages * per
  local first = redis.call('BITPOS', map_key, 0)
  if first < 0 or first >= total then
    return nil
  end
  if k == 1 and prefer == 0 then
    return {first}
  end
  local map = redis.call('GET', map_key) or ''
  local function free(seat)
    local byte = string.byte(map, math.floor(seat / 8) + 1) or 0
    return bit.band(byte, bit.rshift(128, seat % 8)) == 0
  end
  -- The next seat at or after `seat` that may be free: past whole bytes of
  -- sold seats when `seat` starts a byte.
  local function skip_sold(seat)
    if seat % 8 ~= 0 then
      return seat
    end
    local byte = math.floor(seat / 8) + 1
    local next_byte = string.find(map, '[^\255]', byte)
    if not next_byte then
      return math.max(seat, #map * 8)
    end
    return (next_byte - 1) * 8
  end
  -- Side by side: the first run of k free seats within one row (rows of
  -- ROW seats from each carriage's start), looked at where it ends, that
  -- `accept` takes (given its first seat; nil takes any). Rows before
  -- `first` are full.
  local function side_by_side(accept)
    local seat, run = first - (first % per) % ROW, 0
    while seat < total do
      local skipped = skip_sold(seat)
      if skipped ~= seat then
        seat, run = skipped, 0
      else
        if (seat % per) % ROW == 0 then
          run = 0
        end
        if free(seat) then
          run = run + 1
          if run >= k and (not accept or accept(seat - k + 1)) then
            local seats = {}
            for i = 1, k do
              seats[i] = seat - k + i
            end
            return seats
          end
        else
          run = 0
        end
        seat = seat + 1
      end
    end
    return nil
  end
  -- A preference first: the first run holding a preferred letter.
  if prefer ~= 0 then
    local seats = side_by_side(function(start)
      for seat = start, start + k - 1 do
        if preferred(seat) then
          return true
        end
      end
      return false
    end)
    if seats then
      return seats
    end
  end
  if k == 1 then
    return {first}
  end
  local seats = side_by_side(nil)
  if seats then
    return seats
  end
  -- Otherwise the lowest k free seats of the first carriage holding k.
  for carriage = math.floor(first / per), carriages - 1 do
    local base = carriage * per
    local seats = {}
    local seat = math.max(base, first)
    while seat < base + per do
      local skipped = skip_sold(seat)
      if skipped ~= seat then
        seat = skipped
      else
        if free(seat) then
          seats[#seats + 1] = seat
          if #seats == k then
            return seats
          end
        end
        seat = seat + 1
      end
    end
  end
  return nil
end

-- Picks and marks the seats; returns the ticket, or nil.
local function take_seats()
  local map_key = seat_map(from)
  if to - from > 1 then
    local maps = {}
    for segment = from, to - 1 do
      maps[#maps + 1] = seat_map(segment)
    end
    redis.call('BITOP', 'OR', KEYS[9], unpack(maps))
    map_key = KEYS[9]
  end
  local seats = choose(map_key)
  if map_key == KEYS[9] then
    redis.call('DEL', KEYS[9])
  end
  if not seats then
    return nil
  end
  for _, seat in ipairs(seats) do
    for segment = from, to - 1 do
      redis.call('SETBIT', seat_map(segment), seat, 1)
    end
  end
  return string.format('%d/%d/%d/', class, from, to) .. table.concat(seats, '.')
end

local code, order, remaining, ticket = sell_one(ARGV[1], ARGV[2], ARGV[3], ARGV[4], take_seats)
close_sale()
if code == SOLD then
  redis.call('HSET', KEYS[8], order, ticket)
elseif code == REPLAYED then
  ticket = redis.call('HGET', KEYS[8], order)
end
return {code, order, remaining, ticket or '', string.format('%d', seq)}
