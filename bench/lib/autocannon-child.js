// Fallback load generator when wrk is not installed: autocannon in its own process, printing
// the same BENCH_RESULT line as bench/lib/wrk-token.lua (latencies in microseconds; autocannon
// records whole milliseconds, so its percentiles are coarse).
// Usage: node bench/lib/autocannon-child.js '{"url":...,"connections":32,"duration":3,"token":...}'

import autocannon from 'autocannon'

const opts = JSON.parse(process.argv[2] ?? '{}')
const result = await autocannon({
  url: opts.url,
  connections: opts.connections,
  duration: opts.duration,
  headers: opts.token ? { authorization: opts.token } : {},
})
const ms = (v) => Math.round((v ?? NaN) * 1000)
const line = {
  requests: result.requests.total,
  durationUs: Math.round(result.duration * 1e6),
  bytes: result.throughput.total,
  p50: ms(result.latency.p50),
  p90: ms(result.latency.p90),
  p99: ms(result.latency.p99),
  p999: ms(result.latency.p99_9),
  max: ms(result.latency.max),
  mean: ms(result.latency.mean),
  connectErrors: 0,
  readErrors: result.errors,
  writeErrors: 0,
  statusErrors: result.non2xx,
  timeouts: result.timeouts,
}
console.log(`BENCH_RESULT ${JSON.stringify(line)}`)
