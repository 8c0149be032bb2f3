-- Successful logins (body delivery), each wrk thread as its own user.
local counter = 0
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local body = nil
init = function(args)
  body = '{"username":"' .. args[1] .. id .. '","password":"' .. args[2]
    .. '","token_delivery":"body"}'
end

request = function()
  return wrk.format("POST", "/auth/login",
    { ["Content-Type"] = "application/json",
      ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) tokenwarden-load" }, body)
end
