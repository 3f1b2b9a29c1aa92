"""`python -m bench [--quick] [--phase NAME ...]`: run the benchmark, write the JSON report and docs table."""
import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import phases, report, servers, wrk

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs and small databases, to try the suite")
    parser.add_argument("--phase", action="append", choices=phases.ORDER, help="run only these phases")
    parser.add_argument("--seconds", type=int, help="seconds per load run (default 10, quick 3)")
    parser.add_argument("--large", type=int, help="tickets in the large list phase (default 1,000,000)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--docs", type=Path, default=report.DOCS, help="the Markdown page to write")
    parser.add_argument("--no-docs", action="store_true", help="write only the JSON report")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="measure nothing: write the docs from these saved reports (a later report's phases "
                             "replace an earlier one's; each run is named with its time, load and commit)")
    args = parser.parse_args(argv)
    if args.from_json:
        results = report.merge([json.loads(path.read_text()) for path in args.from_json])
        results["targets"] = report.check_targets(results)
        if args.output != RESULTS / "latest.json" or len(args.from_json) > 1:
            args.output.write_text(json.dumps(results, indent=2) + "\n")
        report.write_markdown(results, args.docs)
        report.write_deployment_numbers(results)
        print(f"[bench] wrote {args.docs} from {', '.join(map(str, args.from_json))}")
        return 0
    wrk.ensure_wrk()
    options = phases.Options(
        seconds=args.seconds or (3 if args.quick else 10),
        small=1_000 if args.quick else 10_000,
        large=args.large or (20_000 if args.quick else 1_000_000),
        quick=args.quick,
    )
    results = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "wrk": _wrk_version(),
                    "load_average_at_start": _load_average()},
        "settings": {**_gunicorn_settings(), "connections": wrk.CONNECTIONS,
                     "wrk_threads": wrk.THREADS, "seconds_per_run": options.seconds, "quick": args.quick},
        "phases": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jitbroker-bench-") as scratch:
        options.scratch = scratch
        for name in args.phase or phases.ORDER:
            print(f"[bench] {name} ...", flush=True)
            phase_started = time.monotonic()
            results["phases"][name] = phases.RUNNERS[name](options)
            results["phases"][name]["elapsed_seconds"] = round(time.monotonic() - phase_started, 1)
            print(f"[bench] {name}: {json.dumps(results['phases'][name])[:600]}", flush=True)
            # Written after every phase, so an interrupted run still leaves what it measured.
            _write(results, args, started, complete=False)
    _write(results, args, started, complete=True)
    if not args.no_docs:
        report.write_markdown(results, args.docs)
        print(f"[bench] wrote {args.docs}")
        if report.write_deployment_numbers(results):
            print(f"[bench] wrote the two-instance numbers into {report.DEPLOYMENT}")
    for target in results["targets"]:
        print(f"[bench] {'met ' if target['met'] else 'MISS'} {target['what']}: {target['measured']} "
              f"(target {target['target']})")
    return 0


def _gunicorn_settings():
    settings = servers.gunicorn_settings()
    return {"gunicorn_workers": settings["workers"], "worker_class": settings["worker_class"],
            "gunicorn_threads": settings["threads"]}


def _write(results, args, started, complete):
    results["complete"] = complete
    results["machine"]["load_average_at_end"] = _load_average()
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = report.check_targets(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    if complete:
        print(f"[bench] wrote {args.output}")


def _commit():
    """The commit measured, with "+changes" when the work tree differs from it; None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=RESULTS.parent.parent).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, check=True, cwd=RESULTS.parent.parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+changes" if changed else head


def _cpus():
    import os
    return os.cpu_count()


def _load_average():
    return [round(value, 2) for value in __import__("os").getloadavg()]


def _wrk_version():
    completed = subprocess.run([wrk.ensure_wrk(), "--version"], capture_output=True, text=True)
    return (completed.stdout or completed.stderr).splitlines()[0].strip()


if __name__ == "__main__":
    sys.exit(main())
