-- wrk script for tests/stress/test_concurrency.py: sends the paths given as
-- arguments round-robin and counts, per thread and per path, every request
-- it generates. wrk's own summary counts only completed responses; the
-- requests still in flight when the duration ends are generated here but
-- not completed there, and the server records them too. With this count
-- the test can demand exact equality.
--
--   wrk -t2 -c64 -d20s -s count_requests.lua http://127.0.0.1:PORT -- /a /b
-- prints "generated <path> <n>" per path and "generated_total <n>".

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for i, p in ipairs(args) do
    paths[i] = p
  end
  if #paths == 0 then
    paths[1] = "/"
  end
  requests = {}
  counts = {}
  for i, p in ipairs(paths) do
    requests[i] = wrk.format("GET", p)
    counts[i] = 0
  end
  nxt = 0
end

-- Called by wrk right before it writes each request (dynamic requests).
function request()
  nxt = nxt % #paths + 1
  counts[nxt] = counts[nxt] + 1
  return requests[nxt]
end

function done(summary, latency, requests)
  local total = 0
  local per = {}
  local names = threads[1]:get("paths")
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for i = 1, #names do
      per[i] = (per[i] or 0) + c[i]
      total = total + c[i]
    end
  end
  -- wrk (4.1, wrk.c main -> script_verify_request) calls request() once on
  -- the first thread before the run, to check the request and count
  -- pipelined ones; that request never goes on the wire. It was the first
  -- call of that thread, so it went to the first path.
  per[1] = per[1] - 1
  total = total - 1
  for i = 1, #names do
    io.write(string.format("generated %s %d\n", names[i], per[i]))
  end
  io.write(string.format("generated_total %d\n", total))
  io.write(string.format("completed %d\n", summary.requests))
  io.write(string.format("errors connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
