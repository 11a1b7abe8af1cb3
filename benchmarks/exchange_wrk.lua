-- wrk script of benchmarks/exchange.py: one request a call, picked at random among the
-- lines of a data file the benchmark wrote ("PATH<TAB>BODY" a line; BODY may be empty).
--
-- Environment (set by exchange.py):
--   EXCHANGE_DATA    the data file
--   EXCHANGE_METHOD  GET or POST
--   EXCHANGE_TOKEN   app credential (sent as "Authorization: Bearer ..." when set)
--   EXCHANGE_USER    X-Govshare-User header (UTF-8 percent-encoded) when set
--
-- done() prints one line "EXCHANGE_RESULT {json}" with the counts, the errors and the
-- latency percentiles (microseconds) that exchange.py reads.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
   table.insert(threads, thread)
end

local paths = {}
local bodies = {}
local n = 0
local method = "GET"
local headers = {}

function init(args)
   local file = assert(io.open(os.getenv("EXCHANGE_DATA"), "r"))
   for line in file:lines() do
      local tab = string.find(line, "\t", 1, true)
      n = n + 1
      if tab then
         paths[n] = string.sub(line, 1, tab - 1)
         bodies[n] = string.sub(line, tab + 1)
      else
         paths[n] = line
         bodies[n] = ""
      end
   end
   file:close()
   assert(n > 0, "empty data file")
   method = os.getenv("EXCHANGE_METHOD") or "GET"
   local token = os.getenv("EXCHANGE_TOKEN")
   if token and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
   end
   local user = os.getenv("EXCHANGE_USER")
   if user and user ~= "" then
      headers["X-Govshare-User"] = user
   end
   if method == "POST" then
      headers["Content-Type"] = "application/json"
   end
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   local i = math.random(n)
   local body = bodies[i]
   if body == "" then
      body = nil
   end
   return wrk.format(method, paths[i], headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'EXCHANGE_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
         .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, '
         .. '"mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
