-- wrk script: every request is a new user (user_id=1, 2, 3, ...), with an
-- optional fixed query (QUERY, e.g. "event=G1&"). wrk runs for its -d
-- duration (it cannot stop after a count). Used by scripts/bench-cluster.
local sent = 0
local query = os.getenv("QUERY") or ""

request = function()
  sent = sent + 1
  return wrk.format("GET", "/buy/ticket?" .. query .. "user_id=" .. sent)
end
