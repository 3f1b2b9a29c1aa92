-- Shared by every bench script: count status codes (and "database is locked" bodies)
-- per thread, and print one JSON line with the totals and latency percentiles.
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

statuses = {}
locked = 0

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and body and string.find(body, "locked", 1, true) then
    locked = locked + 1
  end
end

function done(summary, latency, requests)
  local merged = {}
  local locked_total = 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
    locked_total = locked_total + thread:get("locked")
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "statuses": {%s}, "locked": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p95": %d, "p99": %d, "mean": %.1f, "max": %d}}\n',
    summary.requests, summary.duration, table.concat(parts, ", "), locked_total,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
