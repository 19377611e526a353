-- wrk script of bench_http: each connection runs assign -> lock -> redeem cycles for users of its own, each POST
-- with an Idempotency-Key, each answer checked (201) and its code / lock token read for the next step.
-- Run with one connection per thread (-t N -c N): a thread's globals are then one client's state.
-- Environment: BENCH_TOKEN (an API client's access token), BENCH_BOOK (the book's id), BENCH_RUN (a prefix that
-- keeps users and keys of two runs apart). done() prints one "bench-http <thread> <field> <value>" line per figure.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *spec);
]]
local clock = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token = os.getenv("BENCH_TOKEN")
  book = os.getenv("BENCH_BOOK")
  run = os.getenv("BENCH_RUN")
  step, cycles, errors, first_error = 1, 0, 0, ""
  code, lock_token, started = nil, nil, 0
  -- Milliseconds per step, comma-separated strings: wrk copies only flat values out of a thread (a table crashes it).
  latencies = { "", "", "" }
end

local function post(path, key, body)
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }
  return wrk.format("POST", path, headers, body)
end

function request()
  local user = run .. "-" .. id .. "-" .. cycles
  started = now()
  if step == 1 then
    return post("/api/v1/books/" .. book .. "/assign/", user .. "-assign", '{"user_id":"' .. user .. '"}')
  elseif step == 2 then
    return post("/api/v1/codes/" .. code .. "/lock/", user .. "-lock", '{"user_id":"' .. user .. '"}')
  end
  return post(
    "/api/v1/codes/" .. code .. "/redeem/",
    user .. "-redeem",
    '{"user_id":"' .. user .. '","token":"' .. lock_token .. '","amount":"25.00","currency":"EUR"}'
  )
end

function response(status, headers, body)
  latencies[step] = latencies[step] .. string.format("%.2f,", (now() - started) * 1000)
  if status ~= 201 then
    errors = errors + 1
    if first_error == "" then
      first_error = status .. " " .. string.sub(body or "", 1, 300)
    end
    step, cycles = 1, cycles + 1 -- a new user: the failed one's cycle is not counted as done
    return
  end
  if step == 1 then
    code = string.match(body, '"code"%s*:%s*"([^"]+)"')
    step = 2
  elseif step == 2 then
    lock_token = string.match(body, '"token"%s*:%s*"([^"]+)"')
    step = 3
  else
    step, cycles = 1, cycles + 1
    done_cycles = (done_cycles or 0) + 1
  end
  lat_assign, lat_lock, lat_redeem = latencies[1], latencies[2], latencies[3]
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local id = thread:get("id")
    io.write(string.format("bench-http %d cycles %d\n", id, thread:get("done_cycles") or 0))
    io.write(string.format("bench-http %d errors %d\n", id, thread:get("errors")))
    io.write(string.format("bench-http %d first_error %s\n", id, string.gsub(thread:get("first_error"), "\n", " ")))
    for _, name in ipairs({ "assign", "lock", "redeem" }) do
      io.write(string.format("bench-http %d %s %s\n", id, name, thread:get("lat_" .. name) or ""))
    end
  end
end
