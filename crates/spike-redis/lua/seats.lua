-- seats.lua: a train run's seats, shared by ticket.lua (a purchase),
-- release.lua (the waitlist's fill) and waitlist.lua (is a request sold
-- out?). It defines functions only; src/scripts.rs puts it after sell.lua.
-- The script that uses it sets `seat_map` (class, segment -> the declared
-- key of that map) and `SCRATCH` (a declared key to OR a leg's maps into)
-- before calling them.
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
local ROW = 5
local seat_map, SCRATCH
-- The sale hash's train_segments, once read by use_maps_from.
local run_segments

-- Points the functions below at the run's every map, declared class by
-- class from KEYS[first] (class c on segment s at first + c * segments +
-- s), and at KEYS[9] as the scratch key (every script that declares every
-- map puts it there).
local function use_maps_from(first)
  run_segments = tonumber(redis.call('HGET', KEYS[1], 'train_segments') or 0)
  seat_map = function(class, segment)
    return KEYS[first + class * run_segments + segment]
  end
  SCRATCH = KEYS[9]
end

-- Class shapes read by this call: class -> {carriages, per} (false: none).
local shapes = {}
-- Whether the scratch key holds a leg's OR; with keep_scratch (a batch),
-- it is deleted once, by drop_scratch, rather than after every choice.
local scratch_used, keep_scratch = false, false

-- The shape of class `class` (carriages, seats per carriage), from the sale
-- hash's 'class:<index>' (create.lua), read once a call; nil when the run
-- has no such class.
local function class_shape(class)
  local known = shapes[class]
  if known == nil then
    local shape = redis.call('HGET', KEYS[1], 'class:' .. class)
    known = false
    if shape then
      local carriages, per = string.match(shape, '^(%d+) (%d+)$')
      known = {tonumber(carriages), tonumber(per)}
    end
    shapes[class] = known
  end
  if not known then
    return nil
  end
  return known[1], known[2]
end

-- Deletes the scratch key, if a choice left it.
local function drop_scratch()
  if scratch_used then
    redis.call('DEL', SCRATCH)
    scratch_used = false
  end
end

-- The seats `k` passengers get on class `class` from station `from` to `to`
-- with the preferred letters `prefer` (bits; 0 for none), or nil. Scans seat
-- by seat, but jumps over bytes of eight sold seats (string.find, in C), so
-- that a train that fills from the front costs what its free part does.
local function find_seats(class, from, to, k, prefer)
  local carriages, per = class_shape(class)
  if not carriages then
    return nil
  end
  local map_key = seat_map(class, from)
  if to - from > 1 then
    local maps = {}
    for segment = from, to - 1 do
      maps[#maps + 1] = seat_map(class, segment)
    end
    redis.call('BITOP', 'OR', SCRATCH, unpack(maps))
    scratch_used = true
    map_key = SCRATCH
  end
  -- Whether seat `seat` has one of the preferred letters (bit i of `prefer`
  -- for letter i of the row; the row starts again in each carriage).
  local function preferred(seat)
    return bit.band(prefer, bit.lshift(1, (seat % per) % ROW)) ~= 0
  end
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

-- The seats, chosen and read, with the scratch map deleted again (unless
-- keep_scratch: then at the call's end, by drop_scratch).
local function choose_seats(class, from, to, k, prefer)
  local seats = find_seats(class, from, to, k, prefer)
  if not keep_scratch then
    drop_scratch()
  end
  return seats
end

-- Marks `seats` sold on the leg's segments.
local function mark_seats(class, from, to, seats)
  for _, seat in ipairs(seats) do
    for segment = from, to - 1 do
      redis.call('SETBIT', seat_map(class, segment), seat, 1)
    end
  end
end

-- A ticket's wire form '<class>/<from>/<to>/<seat>.<seat>…' (spike-core's
-- Ticket).
local function ticket_wire(class, from, to, seats)
  return string.format('%d/%d/%d/', class, from, to) .. table.concat(seats, '.')
end

-- Chooses and marks the seats of `k` passengers on class `class` from
-- `from` to `to`; returns their ticket (wire form), or nil: none free.
local function take_seats(class, from, to, k, prefer)
  local seats = choose_seats(class, from, to, k, prefer)
  if not seats then
    return nil
  end
  mark_seats(class, from, to, seats)
  return ticket_wire(class, from, to, seats)
end
