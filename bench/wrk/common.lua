-- Shared by every scenario of bench/run (loaded with dofile): numbers each thread, counts
-- statuses when a scenario asks for it, and prints one machine-readable line at the end:
--
--   RESULT requests=N seconds=S rps=R p50_ms=P p99_ms=P max_ms=M connect=N read=N write=N
--          timeout=N non2xx=N s503=N s503_no_retry_after=N starved=N
--
-- s503, s503_no_retry_after and starved are counted only by scenarios that install
-- `count_status` as their response callback (-1 otherwise).

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

-- Per-thread counters, read back in done().
s503 = 0
s503_no_retry_after = 0
starved = 0
counting = false

function count_status(status, headers)
   counting = true
   if status == 503 then
      s503 = s503 + 1
      if headers["Retry-After"] == nil and headers["retry-after"] == nil then
         s503_no_retry_after = s503_no_retry_after + 1
      end
   end
end

-- The lines of `path` whose index modulo `n_threads` is this thread's number.
function thread_share(path, n_threads)
   local share = {}
   local index = 0
   local file = assert(io.open(path, "r"))
   for line in file:lines() do
      if index % n_threads == thread_id and #line > 0 then
         table.insert(share, line)
      end
      index = index + 1
   end
   file:close()
   return share
end

function form_headers()
   local headers = {}
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   headers["Content-Type"] = "application/x-www-form-urlencoded"
   return headers
end

function done(summary, latency, requests)
   local total_503, no_retry_after, total_starved, counted = 0, 0, 0, false
   for _, thread in ipairs(threads) do
      total_503 = total_503 + thread:get("s503")
      no_retry_after = no_retry_after + thread:get("s503_no_retry_after")
      total_starved = total_starved + thread:get("starved")
      counted = counted or thread:get("counting")
   end
   if not counted then
      total_503, no_retry_after = -1, -1
   end
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   io.write(string.format(
      "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
      "connect=%d read=%d write=%d timeout=%d non2xx=%d s503=%d s503_no_retry_after=%d starved=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      errors.connect, errors.read, errors.write, errors.timeout, errors.status,
      total_503, no_retry_after, total_starved))
end
