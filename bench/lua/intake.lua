-- EPM deliveries with new RequestIds: for each request, its created event and then its
-- update event, alternating Application Access (URM) and Admin Access. The bodies are
-- the fixtures' (bench/intake.py fills BODIES); args: a run tag (hex) to keep ids unique.
dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "intake.lua$", "report.lua"))

local counter = 0
local tag = 0

function init(args)
  tag = tonumber(args[1], 16)
end

function request()
  local n = counter
  counter = counter + 1
  local pair = math.floor(n / 2)
  local kind = pair % 2           -- 0: URM, 1: Admin
  local is_update = n % 2         -- 0: created, 1: update
  local request_id = string.format("%08x-%04x-4%03x-8%03x-%012x", tag, id or 0, 0, 0, pair)
  local body = BODIES[kind * 2 + is_update + 1]
  return wrk.format("POST", nil, nil, body[1] .. request_id .. body[2])
end
