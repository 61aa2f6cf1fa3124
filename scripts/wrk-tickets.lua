-- wrk script: train tickets on random legs. Every request asks for a
-- uniformly random station pair (from before to) of STATIONS (a comma
-- list), in class CLASS, for a party of 1 to PARTY (default 1), on
-- TRAIN and DATE. Seeded, so a run replays. Used by scripts/bench-trains.
local stations = {}
for name in string.gmatch(os.getenv("STATIONS") or "A,B", "[^,]+") do
  stations[#stations + 1] = name
end
local base = "/buy/ticket?train=" .. (os.getenv("TRAIN") or "G1")
  .. "&date=" .. (os.getenv("DATE") or "2026-12-01")
  .. "&class=" .. (os.getenv("CLASS") or "second")
local party = tonumber(os.getenv("PARTY") or "1")
math.randomseed(12306)

request = function()
  local from = math.random(1, #stations - 1)
  local to = math.random(from + 1, #stations)
  local passengers = math.random(1, party)
  return wrk.format("GET", base .. "&from=" .. stations[from] .. "&to=" .. stations[to]
    .. "&passengers=" .. passengers)
end
