-- note_create.lua: wrk script starting a new contact-note draft per request
-- (POST /api/v1/notes, a complete GIRP note of about 1 KB, so each can be
-- signed later) and appending the new note's id to BENCH_NOTE_IDS.<thread>
-- for note_sign.lua. BENCH_CLIENT is the client, BENCH_TOKEN the author's
-- bearer token. Used with wrk_report.lua's done().
dofile(os.getenv("BENCH_HERE") .. "/wrk_report.lua")

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  out = io.open(os.getenv("BENCH_NOTE_IDS") .. "." .. (tid or 0), "a")
  counter = 0
  local text = string.rep("The client talked about the week and what helped. ", 6)
  body_fmt = '{"client_id":"' .. os.getenv("BENCH_CLIENT") .. '","contact_kind":"phone_call",' ..
    '"template_id":"girp","tags":["bench"],"sections":[' ..
    '{"key":"goal","text":"Stay housed (%d)"},{"key":"intervention","text":"' .. text .. '"},' ..
    '{"key":"response","text":"' .. text .. '"},{"key":"plan","text":"Meet again next week"}]}'
  auth = "Bearer " .. os.getenv("BENCH_TOKEN")
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/v1/notes", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = auth,
  }, string.format(body_fmt, counter))
end

response = function(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"id":"([0-9a-f%-]+)"')
    if id then
      out:write(id, "\n")
      out:flush()
    end
  end
end
