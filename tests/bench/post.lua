-- wrk script for the benchmarks (tests/bench/run).
-- Environment:
--   BENCH_METHOD   POST (default) or GET
--   BENCH_BODY     file holding the request body (POST)
--   BENCH_HEADERS  file of "Name: value" lines sent with every request
--   BENCH_KEYS     file of API keys, one a line: request i carries key i mod n as x-api-key
--                  (spreads the load over several customers, as production traffic is)
-- done() prints one line "WRKJSON {...}": requests, duration_us, errors, non2xx (wrk counts
-- status >= 400 as errors.status) and latency percentiles in microseconds.

local function slurp(path)
  if not path or path == "" then return nil end
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local method = os.getenv("BENCH_METHOD") or "POST"
local body = slurp(os.getenv("BENCH_BODY"))
local headers = {}
local hfile = slurp(os.getenv("BENCH_HEADERS"))
if hfile then
  for line in hfile:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then headers[k] = v end
  end
end
if body then headers["Content-Type"] = headers["Content-Type"] or "application/json" end

local reqs = {}
local keys = {}
local kfile = slurp(os.getenv("BENCH_KEYS"))
if kfile then
  for k in kfile:gmatch("[^\r\n]+") do keys[#keys + 1] = k end
end

local counter = 0

function init(args)
  if #keys == 0 then
    reqs[1] = wrk.format(method, nil, headers, body)
  else
    for i, k in ipairs(keys) do
      local h = {}
      for hk, hv in pairs(headers) do h[hk] = hv end
      h["x-api-key"] = k
      reqs[i] = wrk.format(method, nil, h, body)
    end
  end
end

function request()
  counter = counter + 1
  return reqs[(counter % #reqs) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"non2xx":%d,"rps":%.1f,"lat_mean":%.1f,"lat_max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout,
    e.status, summary.requests / (summary.duration / 1e6), latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
