-- GET with a different bearer token on every request: the tokens are the lines of the file
-- given as the first argument, shared out between the threads (the second argument is the
-- number of threads) and used in turn, so that no token repeats before all of a thread's share
-- has been used.
--   wrk ... -s fresh_tokens.lua URL -- TOKENS_FILE N_THREADS
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

-- Each thread formats its share of requests once, in init(), so that sending one costs wrk a
-- table lookup rather than a string build: the load generator shares the cores with the servers.
local requests = {}
local next_index = 1

function init(args)
   local tokens = thread_share(args[1], tonumber(args[2]))
   assert(#tokens > 0, "no tokens for thread " .. thread_id)
   local headers = {}
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   for i, token in ipairs(tokens) do
      headers["Authorization"] = "Bearer " .. token
      requests[i] = wrk.format("GET", nil, headers, nil)
   end
end

function request()
   local request = requests[next_index]
   next_index = next_index % #requests + 1
   return request
end
