-- GET of the URL given to wrk, the same request every time (any headers from -H).
-- Optional: BENCH_DELAY_MS pauses each connection between requests, for a light probe.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
   function delay()
      return pause
   end
end
