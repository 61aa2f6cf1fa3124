-- wrk script for the waiting room: MODE=join POSTs /queue/join, MODE=status
-- GETs /queue/status, MODE=buy GETs /buy/ticket (the baseline: the same
-- script cost in the load generator), each request for the next of USERS buyers
-- (user_id=1..USERS, then again from 1), with a fixed query prefix (QUERY,
-- e.g. "event=G1&"). With TOKENS (a file, buyer i's token on line i), the
-- waiting room's requests carry `token=` instead (a queued sale is a token
-- sale). With WORKS (a file, buyer i's solved proof of work on line i), a
-- join carries `work=` too. Used by scripts/bench-queue and
-- scripts/bench-join-work.
local sent = 0
local users = tonumber(os.getenv("USERS") or "10000")
local query = os.getenv("QUERY") or ""
local mode = os.getenv("MODE") or "status"
local works = {}
local works_file = os.getenv("WORKS")
if works_file and works_file ~= "" then
  for line in io.lines(works_file) do works[#works + 1] = line end
end
local tokens = {}
local tokens_file = os.getenv("TOKENS")
if tokens_file and tokens_file ~= "" then
  for line in io.lines(tokens_file) do tokens[#tokens + 1] = line end
end

-- Who is asking: buyer `user`'s token when there are tokens, else the id.
local function buyer(user)
  if tokens[user] then return "token=" .. tokens[user] end
  return "user_id=" .. user
end

request = function()
  sent = sent + 1
  local user = ((sent - 1) % users) + 1
  if mode == "join" then
    local work = ""
    if works[user] then work = "&work=" .. works[user] end
    return wrk.format("POST", "/queue/join?" .. query .. buyer(user) .. work)
  end
  if mode == "buy" then
    return wrk.format("GET", "/buy/ticket?" .. query .. "user_id=" .. user)
  end
  return wrk.format("GET", "/queue/status?" .. query .. buyer(user))
end
