-- note_sign.lua: wrk script signing drafts (POST /api/v1/notes/{id}/sign),
-- each once: the ids note_create.lua wrote (BENCH_NOTE_IDS, one per line),
-- thread t of BENCH_SIGN_THREADS taking lines t, t+T, t+2T... A run writes
-- how many each thread used to BENCH_NOTE_IDS.used, so the next run (the
-- measured one after the warm-up) goes on from there. A thread that runs out
-- starts over, and signing a signed note is refused (422): the run then
-- counts status errors and run.sh reports it as not run cleanly rather than
-- publishing a figure for another path. BENCH_TOKEN is the author's bearer
-- token. Used with wrk_report.lua's done().
dofile(os.getenv("BENCH_HERE") .. "/wrk_report.lua")

local threads = {}
local report = done

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local function used_path()
  return os.getenv("BENCH_NOTE_IDS") .. ".used"
end

function init(args)
  local n = tonumber(os.getenv("BENCH_SIGN_THREADS") or "1")
  local skip = 0
  local f = io.open(used_path(), "r")
  if f then
    for line in f:lines() do
      local t, c = string.match(line, "^(%d+) (%d+)$")
      if tonumber(t) == tid then
        skip = tonumber(c)
      end
    end
    f:close()
  end
  ids = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_NOTE_IDS")) do
    if i % n == (tid or 1) - 1 then
      table.insert(ids, line)
    end
    i = i + 1
  end
  counter = skip
  auth = "Bearer " .. os.getenv("BENCH_TOKEN")
end

request = function()
  counter = counter + 1
  local id = ids[(counter - 1) % #ids + 1]
  return wrk.format("POST", "/api/v1/notes/" .. id .. "/sign", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = auth,
  }, '{"attest":true}')
end

done = function(summary, latency, requests)
  local f = io.open(used_path(), "w")
  for _, t in ipairs(threads) do
    f:write(string.format("%d %d\n", t:get("tid"), t:get("counter")))
  end
  f:close()
  report(summary, latency, requests)
end
