-- Bearer `GET /api/me` with one access token (args[1]); the Bearer path's
-- revocation check and session status cache answer from memory after the
-- first request.
init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end
