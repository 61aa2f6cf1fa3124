-- waitlist_rules.lua: a train run's waitlist as central stock keeps it, and
-- the fill rule, shared by release.lua (seats come back) and waitlist.lua
-- (placing, reading, withdrawing). It defines functions only; src/scripts.rs
-- puts it after sell.lua and seats.lua. The rules are spike-core's (the
-- waitlist module of its train module, where they are written down).
--
-- KEYS as both scripts declare them:
-- KEYS[1..7] as in sell.lua, KEYS[8] tickets, KEYS[9] the seats' scratch key
-- KEYS[10] spike:{E}:waitlist        hash: place -> entry (WaitEntry::to_wire:
--          '<user> <state> <placed_at_ms> <deadline_ms> <request> <node>
--           <class> <from> <to> <passengers> <preferred bits> <order or ->')
-- KEYS[11] spike:{E}:waitlist:users  hash: user -> their latest place
-- KEYS[12] spike:{E}:waitlist:queue  sorted set: the waiting places (score
--          and member the place)
-- KEYS[13..] the run's every seat map, class by class (class c on segment s
--          at 13 + c * segments + s)

-- Points seats.lua at the run's every map (declared from KEYS[13]).
local function use_every_map()
  use_maps_from(13)
end

-- The entry at `place` as a table, or nil.
local function read_entry(place)
  local wire = redis.call('HGET', KEYS[10], place)
  if not wire then
    return nil
  end
  local f = {}
  for word in string.gmatch(wire, '%S+') do
    f[#f + 1] = word
  end
  return {place = place, user = f[1], state = f[2], placed_at = f[3], deadline = tonumber(f[4]),
    request = f[5], node = f[6], class = tonumber(f[7]), from = tonumber(f[8]),
    to = tonumber(f[9]), k = tonumber(f[10]), prefer = tonumber(f[11]), order = f[12]}
end

-- The wire form of `entry`.
local function entry_wire(entry)
  return table.concat({entry.user, entry.state, entry.placed_at,
    string.format('%d', entry.deadline), entry.request, entry.node, entry.class, entry.from,
    entry.to, entry.k, entry.prefer, entry.order}, ' ')
end

-- Writes `entry` at its place; returns its wire form.
local function write_entry(entry)
  local wire = entry_wire(entry)
  redis.call('HSET', KEYS[10], entry.place, wire)
  return wire
end

-- Takes `entry` out of line, in `state` (with its order when filled).
local function settle(entry, state, order)
  entry.state = state
  entry.order = order or '-'
  redis.call('ZREM', KEYS[12], entry.place)
  return write_entry(entry)
end

-- Waiting places before `place`.
local function ahead_of(place)
  return redis.call('ZCOUNT', KEYS[12], '-inf', '(' .. place)
end

-- The fill rule, after seats of `class` from station `from` to `to` came
-- back: the waiting entries in place order, those of that class whose leg
-- shares a segment with it; an entry past its deadline expires, one whose
-- traveller is at the limit (or whose request id bought meanwhile) is
-- superseded, one the free seats can serve becomes an order, and one they
-- cannot serve waits on. With `class` nil, every waiting entry is tried (a
-- refill, after a recovery). Needs open_sale() first; returns how many filled.
local function fill_waitlist(class, from, to)
  local filled = 0
  for _, place in ipairs(redis.call('ZRANGE', KEYS[12], 0, -1)) do
    local entry = read_entry(place)
    local touched = entry and (class == nil or (entry.class == class and entry.from < to and from < entry.to))
    if touched then
      if now_ms >= entry.deadline then
        settle(entry, 'expired')
      elseif at_limit(entry.user) or request_entry(entry.request) then
        settle(entry, 'superseded')
      else
        local ticket = take_seats(entry.class, entry.from, entry.to, entry.k, entry.prefer)
        if ticket then
          local order = record_order(entry.user, entry.request, entry.node, ticket)
          redis.call('HSET', KEYS[8], order, ticket)
          settle(entry, 'filled', order)
          filled = filled + 1
        end
      end
    end
  end
  return filled
end
