-- wrk_report.lua: after a wrk run, print one machine-readable line for
-- tests/bench/run.sh (latencies in microseconds). Used as `wrk -s`.
--
--   WRK requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=..
--       mean_us=.. connect_errors=.. read_errors=.. write_errors=..
--       status_errors=.. timeouts=..
--
-- status_errors counts responses outside 2xx/3xx: a benchmark with any is
-- not a measurement of the path it means to measure.

done = function(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "WRK requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "mean_us=%.1f connect_errors=%d read_errors=%d write_errors=%d "
      .. "status_errors=%d timeouts=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
