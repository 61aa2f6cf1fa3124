-- wrk script for the waiting room: MODE=join POSTs /queue/join, MODE=status
-- GETs /queue/status, MODE=buy GETs /buy/ticket (the baseline: the same
-- script cost in the load generator), each request for the next of USERS buyers
-- (user_id=1..USERS, then again from 1), with a fixed query prefix (QUERY,
-- e.g. "event=G1&"). Used by scripts/bench-queue.
local sent = 0
local users = tonumber(os.getenv("USERS") or "10000")
local query = os.getenv("QUERY") or ""
local mode = os.getenv("MODE") or "status"

request = function()
  sent = sent + 1
  local user = ((sent - 1) % users) + 1
  if mode == "join" then
    return wrk.format("POST", "/queue/join?" .. query .. "user_id=" .. user)
  end
  if mode == "buy" then
    return wrk.format("GET", "/buy/ticket?" .. query .. "user_id=" .. user)
  end
  return wrk.format("GET", "/queue/status?" .. query .. "user_id=" .. user)
end
