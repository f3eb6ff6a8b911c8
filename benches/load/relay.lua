-- wrk script: relays the sample Report as plain UTF-8 XML, each request from a different client
-- (the ClientID is rewritten per request), so every record really applies in StateSys.
--   cargo run --release -p benches --example write_report > /tmp/report.xml
--   REPORT=/tmp/report.xml wrk -t1 -c64 -d30s -s benches/load/relay.lua http://127.0.0.1:8080
local f = assert(io.open(os.getenv("REPORT") or "/tmp/report.xml", "rb"))
local template = f:read("*a")
f:close()
local prefix, suffix = template:match("^(.-<ClientID>GUID:)%x+%-%x+%-%x+%-%x+%-%x+(</ClientID>.*)$")
assert(prefix, "the report has no ClientID")
local headers = { ["Content-Type"] = "text/xml", ["X-Target-Endpoint"] = "MP_RelayEndpoint" }
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

-- The request is formatted once around a placeholder ClientID of the same length (so its
-- Content-Length holds); each request then costs one concatenation of 43 KB, not two and a
-- table.concat, which kept wrk at 0.4 of a core on the backend's two.
local head, tail

function init(args)
  local mark = "00000000-0000-4000-8000-000000000000"
  local whole = wrk.format("POST", "/ccm_system/request", headers, prefix .. mark .. suffix)
  local at = whole:find(mark, 1, true)
  head, tail = whole:sub(1, at - 1), whole:sub(at + #mark)
end

function request()
  counter = counter + 1
  return head .. string.format("%08X-0000-4000-8000-%012X", thread_id, counter) .. tail
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. "\n")
  end
end
