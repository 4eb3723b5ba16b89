-- create_client.lua: wrk script posting a new client per request, each with
-- a distinct name (duplicate detection would refuse repeats) and a Medicaid
-- ID (so every create encrypts). The bearer token comes from the
-- BENCH_TOKEN environment variable. Used with wrk_report.lua's done().
dofile(os.getenv("BENCH_HERE") .. "/wrk_report.lua")

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + (tid or 0))
  prefix = string.format("T%d-%d", tid or 0, math.random(1, 1000000000))
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"given_name":"Bench","family_name":"%s-%d","date_of_birth":"1980-02-03",' ..
    '"phone":"555-010-2030","preferred_contact_method":"phone",' ..
    '"medicaid_id":"MB%s%08d"}', prefix, counter, string.gsub(prefix, "[^0-9]", ""), counter)
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }, body)
end
