-- Refresh chains, every token spent once: each wrk thread reads its own
-- tokens (one per connection, `<file>.<thread>`) and, for each 200, takes the
-- successor from the body for its next request. A chain whose refresh fails
-- is gone; once a thread has none left it sends a dead token (an error).
-- With `mix` set (mixed profile) a request is, at random, a login, a refresh
-- or a Bearer `GET /api/me` with the latest access token. When a file
-- `<file>.<thread>.proofs` exists (DPoP-bound chains), each refresh sends
-- the next of its proofs, one a line, in a `DPoP` header.
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local UA = "Mozilla/5.0 (X11; Linux x86_64) tokenwarden-load"
local queue = {}
local access = nil
local login_body = nil
local mix = nil
local proofs = nil

init = function(args)
  for line in io.lines(args[1] .. "." .. id) do
    local refresh, acc = line:match("^(%S+) (%S+)$")
    queue[#queue + 1] = refresh
    access = acc
  end
  local file = io.open(args[1] .. "." .. id .. ".proofs")
  if file then
    proofs = {}
    for line in file:lines() do
      proofs[#proofs + 1] = line
    end
    file:close()
  end
  if args[2] then
    mix = { login = tonumber(args[2]), refresh = tonumber(args[3]) }
    login_body = '{"username":"' .. args[4] .. id .. '","password":"' .. args[5]
      .. '","token_delivery":"body"}'
  end
end

-- wrk calls `request` once on the first thread's state before the run, to
-- check the script (`script_verify_request`); that request is never sent,
-- so it must not take a token out of a chain.
local verified = false

local function refresh()
  if id == 0 and not verified then
    verified = true
    return wrk.format("POST", "/auth/refresh", {}, "")
  end
  local token = table.remove(queue, 1) or "tw_rt_dead"
  local headers = { ["Content-Type"] = "application/json", ["User-Agent"] = UA }
  if proofs then
    headers["DPoP"] = table.remove(proofs)
  end
  return wrk.format("POST", "/auth/refresh", headers, '{"refresh_token":"' .. token .. '"}')
end

request = function()
  if mix then
    local r = math.random()
    if r < mix.login then
      return wrk.format("POST", "/auth/login",
        { ["Content-Type"] = "application/json", ["User-Agent"] = UA }, login_body)
    elseif r < mix.login + mix.refresh then
      return refresh()
    else
      return wrk.format("GET", "/api/me",
        { ["Authorization"] = "Bearer " .. access, ["User-Agent"] = UA })
    end
  end
  return refresh()
end

response = function(status, headers, body)
  if status == 200 then
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      queue[#queue + 1] = token
      access = body:match('"access_token"%s*:%s*"([^"]+)"') or access
    end
  end
end
