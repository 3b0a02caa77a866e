-- POST of the form in BENCH_FORM (client credentials come as -H Authorization), the same every
-- time: client_credentials and password grants.
-- Optional: BENCH_DELAY_MS pauses each connection between requests (an arrival rate rather than
-- a closed loop, for the overload scenario); BENCH_COUNT_STATUS=1 counts 503 answers and
-- whether they carry Retry-After.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

function init(args)
   wrk.method = "POST"
   wrk.body = assert(os.getenv("BENCH_FORM"), "BENCH_FORM is not set")
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
   function delay()
      return pause
   end
end

if os.getenv("BENCH_COUNT_STATUS") == "1" then
   function response(status, headers, body)
      count_status(status, headers)
   end
end
