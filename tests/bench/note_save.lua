-- note_save.lua: wrk script autosaving drafts (PUT /api/v1/notes/{id}/draft
-- with If-Match), one draft per wrk thread, run with as many connections as
-- threads so each thread's requests and responses strictly alternate. A
-- thread's first request reads its draft (GET) to learn the current ETag;
-- every later one saves the draft at the version the last answer gave.
--
-- BENCH_NOTES: comma-separated draft ids (at least one per thread);
-- BENCH_TOKEN: the author's bearer token. Used with wrk_report.lua's done().
dofile(os.getenv("BENCH_HERE") .. "/wrk_report.lua")

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local ids = {}
  for id in string.gmatch(os.getenv("BENCH_NOTES"), "[^,]+") do
    table.insert(ids, id)
  end
  note = ids[((tid or 1) - 1) % #ids + 1]
  etag = nil
  counter = 0
  auth = "Bearer " .. os.getenv("BENCH_TOKEN")
end

local text = string.rep("The client talked about the week and what helped. ", 6)

request = function()
  if not etag then
    return wrk.format("GET", "/api/v1/notes/" .. note, {["Authorization"] = auth})
  end
  counter = counter + 1
  local body = string.format(
    '{"sections":[{"key":"goal","text":"Stay housed (save %d)"},' ..
    '{"key":"intervention","text":"%s"},{"key":"response","text":"%s"},' ..
    '{"key":"plan","text":"Meet again next week"}]}', counter, text, text)
  return wrk.format("PUT", "/api/v1/notes/" .. note .. "/draft", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = auth,
    ["If-Match"] = etag,
  }, body)
end

response = function(status, headers, body)
  etag = headers["ETag"] or headers["etag"] or headers["Etag"] or etag
end
