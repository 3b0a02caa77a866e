-- The refresh grant, each refresh token used once: every response's new refresh token goes
-- back into this thread's pool and a later request uses it (rotation, RFC 9700 §4.14). The pool
-- starts with the refresh tokens in the file given as the first argument, one family per line,
-- shared out between the threads (second argument: the number of threads); a thread needs at
-- least as many families as it has connections. A request that finds the pool empty (a refresh
-- failed and its family's chain broke) is sent with an unusable token and counted as starved.
--   wrk ... -s refresh_chain.lua URL/token -- FAMILIES_FILE N_THREADS
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local pool = {}
local headers = {}

function init(args)
   pool = thread_share(args[1], tonumber(args[2]))
   assert(#pool > 0, "no refresh tokens for thread " .. thread_id)
   headers = form_headers()
end

function request()
   local token = table.remove(pool)
   if token == nil then
      starved = starved + 1
      token = "none"
   end
   return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, response_headers, body)
   count_status(status, response_headers)
   if status == 200 then
      local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(pool, token)
      end
   end
end
