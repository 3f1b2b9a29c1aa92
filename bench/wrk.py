"""Running wrk: a fixed number of connections, Lua scripts that vary each request, parsed results.

wrk (Debian's package) holds `connections` open for the whole run, which is what a
burst of EPM deliveries or a room of approvers looks like, and costs little CPU on a
2-core machine where the load generator shares the cores with the server. Each
script's `done()` prints one JSON line with the latency percentiles and every status
code seen, so non-2xx answers are counted exactly rather than inferred.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CONNECTIONS = 16
THREADS = 2
SCRIPTS = Path(__file__).resolve().parent / "lua"
_MARK = "BENCH_JSON "


class WrkMissing(RuntimeError):
    pass


def ensure_wrk():
    """The wrk binary; installed from Debian's packages when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing("wrk is not installed: run `apt-get install wrk` (Debian) and try again")


def run(url, script, seconds, script_args=(), headers=None, connections=CONNECTIONS, threads=THREADS):
    """Load `url` with wrk and `script` (a file in bench/lua, or a path); returns the parsed result."""
    script_path = Path(script) if Path(script).is_absolute() else SCRIPTS / script
    command = [ensure_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
               "-s", str(script_path)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", *map(str, script_args)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in completed.stdout.splitlines():
        if line.startswith(_MARK):
            result = json.loads(line[len(_MARK):])
            break
    else:
        raise RuntimeError(f"wrk printed no result: {completed.stdout[-2000:]} {completed.stderr[-2000:]}")
    statuses = {int(code): count for code, count in result.pop("statuses").items()}
    ok = sum(count for code, count in statuses.items() if 200 <= code < 300)
    return {
        "requests_per_second": round(result["requests"] / (result["duration_us"] / 1e6), 1),
        "requests": result["requests"],
        "ok": ok,
        "non_2xx": sum(statuses.values()) - ok,
        "statuses": statuses,
        "socket_errors": result["socket_errors"],
        "database_locked": result.get("locked", 0),
        "latency_ms": {name: round(value / 1000, 2) for name, value in result["latency_us"].items()},
        "connections": connections,
        "seconds": seconds,
    }


def write_script(text):
    """A Lua script written to a temporary file (for scripts built from fixtures); returns its path."""
    handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    with handle:
        handle.write(text)
    return handle.name
