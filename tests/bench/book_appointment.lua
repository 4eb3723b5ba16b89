-- book_appointment.lua: wrk script booking a new one-minute meeting per
-- request, each in a free slot of the last year (between the seeded
-- history's meetings: 72 slots a quarter of an hour apart from 14:00 UTC,
-- walking back a day every 72; each wrk thread has its own range).
--
-- BENCH_TOKEN is the bearer token; BENCH_CLIENTS the clients to book
-- (comma-separated), one after another. Without BENCH_STAFF each meeting is
-- the signed-in staff member's own; with BENCH_STAFF (comma-separated staff
-- ids, a supervisor's token) request n books staff n mod S in slot n div S,
-- so no two requests share a staff member's or (with at least twice as many
-- clients as staff) a client's slot. BENCH_BOOK_BASE is the epoch second of
-- the first day's 14:00, BENCH_BOOK_T0 when the benchmark started: each wrk
-- run (warm-up, measured run) books at its own minute within the slots,
-- (seconds since T0) mod 15, so a later run never collides with an earlier
-- one.
dofile(os.getenv("BENCH_HERE") .. "/wrk_report.lua")

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  clients = {}
  for c in string.gmatch(os.getenv("BENCH_CLIENTS"), "[^,]+") do
    table.insert(clients, c)
  end
  staff = {}
  for id in string.gmatch(os.getenv("BENCH_STAFF") or "", "[^,]+") do
    table.insert(staff, id)
  end
  base = tonumber(os.getenv("BENCH_BOOK_BASE"))
  phase = (os.time() - tonumber(os.getenv("BENCH_BOOK_T0"))) % 15
end

request = function()
  local n = (tid or 0) * 20000 + counter
  counter = counter + 1
  local slot, who = n, ""
  if #staff > 0 then
    slot = math.floor(n / #staff)
    who = string.format('"staff_id":"%s",', staff[(n % #staff) + 1])
  end
  local start = base - math.floor(slot / 72) * 86400 + (slot % 72) * 900 + phase * 60
  local body = string.format(
    '{%s"client_id":"%s","start":"%s","end":"%s","mode":"in_person","purpose":"bench"}',
    who, clients[(n % #clients) + 1], os.date("!%Y-%m-%dT%H:%M:%SZ", start),
    os.date("!%Y-%m-%dT%H:%M:%SZ", start + 60))
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }, body)
end
