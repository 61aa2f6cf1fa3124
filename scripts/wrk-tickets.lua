-- wrk script: train tickets on random legs. Every request asks for a
-- uniformly random station pair (from before to) of STATIONS (a comma
-- list), in class CLASS, for a party of 1 to PARTY (default 1), on one of
-- TRAINS (a comma list of train numbers, drawn at random) and DATE.
-- Seeded, so a run replays. Used by scripts/bench-trains.
local stations = {}
for name in string.gmatch(os.getenv("STATIONS") or "A,B", "[^,]+") do
  stations[#stations + 1] = name
end
local trains = {}
for name in string.gmatch(os.getenv("TRAINS") or "G1", "[^,]+") do
  trains[#trains + 1] = name
end
local rest = "&date=" .. (os.getenv("DATE") or "2026-12-01")
  .. "&class=" .. (os.getenv("CLASS") or "second")
local party = tonumber(os.getenv("PARTY") or "1")
math.randomseed(12306)

request = function()
  local from = math.random(1, #stations - 1)
  local to = math.random(from + 1, #stations)
  local passengers = math.random(1, party)
  local train = trains[math.random(1, #trains)]
  return wrk.format("GET", "/buy/ticket?train=" .. train .. rest .. "&from=" .. stations[from] .. "&to=" .. stations[to]
    .. "&passengers=" .. passengers)
end
