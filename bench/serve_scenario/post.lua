-- wrk script for serve_bench.py: POST /classify {"texts": ["..."]}, one short text per request,
-- varied per request (same sentences as scenario_data.py's request_texts; keep them in step).
-- done() prints one machine-readable line: "WRKJSON {...}" with counts and latency percentiles
-- in microseconds, so the driver does not parse wrk's human summary.

local sentences = {
  "I cannot log in to my account", "please reset my password",
  "how do I change the email on my profile", "my account was locked after too many attempts",
  "delete my user account and personal data", "two factor code never arrives when I sign in",
  "I want to update my username", "someone else may have access to my login",
  "I was charged twice for my order", "please send me a refund for the last invoice",
  "my credit card payment was declined", "why is there an extra fee on my bill",
  "cancel my subscription before the next charge", "the invoice shows the wrong amount",
  "can I pay with a bank transfer instead", "I need a receipt for my last payment",
  "my package has not arrived yet", "the parcel tracking number does not work",
  "can you deliver to a different address", "the box arrived damaged and wet",
  "how long does express delivery take", "the courier left my parcel at the wrong door",
  "my order is stuck in customs", "I received someone else's package",
  "the app crashes when I open settings", "the website shows an error 500 page",
  "sync between my phone and laptop is broken", "the export button does nothing",
  "the page loads very slowly since the update", "notifications stopped working on android",
  "the api returns a timeout for every request", "the screen stays blank after I click save",
}
local prefixes = { "", "hello, ", "hi team, ", "urgent: " }
local suffixes = { "", " thanks", " please help", " since yesterday" }

local bodies = {}
for _, suffix in ipairs(suffixes) do
  for _, prefix in ipairs(prefixes) do
    for _, sentence in ipairs(sentences) do
      bodies[#bodies + 1] = '{"texts": ["' .. prefix .. sentence .. suffix .. '"]}'
    end
  end
end

local headers = { ["Content-Type"] = "application/json" }
local counter = 0

request = function()
  counter = counter + 1
  return wrk.format("POST", nil, headers, bodies[(counter % #bodies) + 1])
end

-- Count responses by status in each wrk thread; done() collects the counts through setup().
local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50": %d, "p95": %d, "p99": %d, "max": %d, ' ..
    '"mean": %.1f, "statuses": {%s}}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ", ")))
end
