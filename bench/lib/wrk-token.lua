-- wrk script of the load benchmarks: sends the pod token (env BENCH_TOKEN) as the raw
-- Authorization header (wrk sets Host from the URL: 127.0.0.1:PORT), or, with env
-- BENCH_FORGED_PREFIX (a real token's header and claims, and the dot), a forged token per request:
-- that prefix and a signature of its own. Prints one machine-readable line with the summary and
-- latency percentiles in microseconds.
local token = os.getenv("BENCH_TOKEN")
local forged = os.getenv("BENCH_FORGED_PREFIX")
if forged ~= nil and forged ~= "" then
  local n = 0
  request = function()
    n = n + 1
    return wrk.format(nil, nil, { ["Authorization"] = forged .. string.format("f0rg3d%010d", n) })
  end
elseif token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = token
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"durationUs":%d,"bytes":%d,"p50":%d,"p90":%d,"p99":%d,' ..
    '"p999":%d,"max":%d,"mean":%.1f,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"statusErrors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
