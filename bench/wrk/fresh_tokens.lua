-- GET with a different bearer token on every request: the tokens are the lines of the file
-- given as the first argument, shared out between the threads (the second argument is the
-- number of threads) and used in turn, so that no token repeats before all of a thread's share
-- has been used.
--   wrk ... -s fresh_tokens.lua URL -- TOKENS_FILE N_THREADS
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local tokens = {}
local next_index = 1
local headers = {}

function init(args)
   tokens = thread_share(args[1], tonumber(args[2]))
   assert(#tokens > 0, "no tokens for thread " .. thread_id)
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
end

function request()
   headers["Authorization"] = "Bearer " .. tokens[next_index]
   next_index = next_index % #tokens + 1
   return wrk.format("GET", nil, headers, nil)
end
