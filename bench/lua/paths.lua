-- GET a rotation of paths given as script arguments (one per request, round robin).
dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "paths.lua$", "report.lua"))
local paths = {}
local next_index = 1

function init(args)
  for _, path in ipairs(args) do
    table.insert(paths, path)
  end
  next_index = (id or 1) % #paths + 1
end

function request()
  local path = paths[next_index]
  next_index = next_index % #paths + 1
  return wrk.format("GET", path)
end
