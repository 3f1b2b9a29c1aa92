"""The report: each target checked against the numbers measured in the same run, and docs/performance.md.

Targets are ratios against the roof (a no-op endpoint served the same way) where
absolute speed depends on the machine; the page prints the absolute numbers too.
"""
from pathlib import Path

from bench import profile, table_api

DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
# Every page but search: one client's p95 at the large history, and its growth from the small one.
PAGES = ("list_first_page", "list_deep_page", "ticket_page", "api_first_page", "api_deep_page", "incoming_log",
         "outbound_log", "app_log", "audit_log", "api_incoming_log", "api_outbound_log", "api_app_log",
         "api_audit_log", "api_incoming_requests")
LARGE_PAGE_P95_MS = 50
PAGE_GROWTH = 1.3
SEARCH_P95_MS = 100
DECISION_P95_MS = 50
WORKER_RSS_MB = 120


def _one_client_p95(size, page):
    """One client's p95 (ms); infinite when no request was answered within the run."""
    result = size["pages"][page]
    # Reports from before one-client runs hold only the 16-connection figures.
    result = result.get("one_client") or result
    return result["latency_ms"]["p95"] if result["requests"] else float("inf")


def _rounds(size, page):
    """", the median of its rounds a, b, c" for a page measured in alternating rounds (nothing for older runs)."""
    ratios = size["pages"][page].get("ratios_by_round")
    return f", the median of its rounds {', '.join(map(str, ratios))}" if ratios else ""


def _target(what, target, measured, met):
    return {"what": what, "target": target, "measured": measured, "met": bool(met)}


# The intake phases run the default path (each delivery becomes its ticket before its 2xx)
# beside the durable write reference (bench/reference.py); each must store every delivery,
# make every ticket, and keep within these ratios of the reference measured in the same run.
INTAKE_PHASES = ("intake_{backend}",)
REFERENCE_RATIO = {"sqlite": 0.7, "postgresql": 0.5}
REFERENCE_P99_RATIO = 3


def intake_label(result):
    """`intake sqlite`: a phase by the backend it ran on."""
    return f"intake {result['backend']}"


def check_targets(results):
    """One entry per target the run measured: what, target, measured, met."""
    phases = results["phases"]
    checks = []
    for backend in ("sqlite", "postgresql"):
        for name in INTAKE_PHASES:
            intake = phases.get(name.format(backend=backend))
            if intake:
                checks += _stored_everything(intake)
                if "reference" in intake:
                    checks += _against_reference(intake)
    for backend in ("sqlite", "postgresql"):
        lists = phases.get(f"lists_{backend}")
        if not lists:
            continue
        small, large = lists["small"], lists["large"]
        at = f"{large['tickets']:,} tickets and {large.get('log_rows', 0):,} log rows"
        for page in (*PAGES, "search"):
            if page not in large["pages"] or page not in small["pages"]:
                continue
            big, little = (_one_client_p95(large, page), _one_client_p95(small, page))
            growth = big / little if little and big != float("inf") else float("inf")
            limit = SEARCH_P95_MS if page == "search" else LARGE_PAGE_P95_MS
            checks.append(_target(f"{page.replace('_', ' ')} at {at}, {backend}",
                                  f"one client p95 <= {limit} ms and <= {PAGE_GROWTH} x at {small['tickets']:,}",
                                  f"p95 {big} ms, {growth:.2f} x{_rounds(large, page)}" if big != float("inf") else
                                  "no request answered within the run", big <= limit and growth <= PAGE_GROWTH))
        checks.append(_target(f"web worker peak RSS after the {large['tickets']:,}-ticket phase, {backend}",
                              f"<= {WORKER_RSS_MB} MB", f"{large['worker_peak_rss_mb']} MB",
                              (large["worker_peak_rss_mb"] or 0) <= WORKER_RSS_MB))
    checks += table_api.check_targets(phases, _target)
    trip = phases.get("decision_round_trip")
    if trip:
        checks.append(_target("decision round trip (fake EPM on loopback)", f"p95 <= {DECISION_P95_MS} ms",
                              f"p95 {trip['latency_ms']['p95']} ms", trip["latency_ms"]["p95"] <= DECISION_P95_MS))
        checks.append(_target("EPM token fetches for the decision run", "1",
                              f"{trip['token_fetches']} ({trip['decisions']} decisions, 2 workers)",
                              trip["token_fetches"] == 1))
    pair = phases.get("two_instances")
    if pair:
        intake, decided = pair["intake"], pair["decisions"]
        checks.append(_target("two instances, one PostgreSQL: intake", "no duplicate tickets, gap-free numbers, "
                              "0 non-2xx, every 2xx stored",
                              f"{intake['rows']['tickets']} tickets, "
                              f"duplicates: {intake['rows']['duplicate_request_ids']}, "
                              f"gap-free: {intake['numbers_gap_free']}, non-2xx: {intake['non_2xx']}",
                              intake["no_duplicate_tickets"] and intake["numbers_gap_free"] and intake["non_2xx"] == 0
                              and intake["every_2xx_stored"]))
        checks.append(_target("two instances and a scheduler: decisions", "each applied by EPM exactly once",
                              f"{decided['epm']['applied']} applied for {decided['tickets_decided']} tickets "
                              f"({decided['delivered']} delivered)", decided["exactly_once"]))
    return checks


def _against_reference(intake):
    """The throughput and p99 targets of one intake phase against the reference run beside it."""
    backend, reference = intake["backend"], intake["reference"]
    return [
        _target(f"intake throughput against the durable write reference, {backend}",
                f">= {REFERENCE_RATIO[backend]} x", f"{intake['ratio_to_reference']} x, the median of its rounds "
                f"{', '.join(map(str, intake.get('ratios_by_round', [])))} ({intake['requests_per_second']} vs "
                f"{reference['requests_per_second']} deliveries/s, median rounds)",
                intake["ratio_to_reference"] >= REFERENCE_RATIO[backend]),
        _target(f"intake p99 against the durable write reference, {backend}", f"<= {REFERENCE_P99_RATIO} x",
                f"{intake['p99_to_reference']} x ({intake['latency_ms']['p99']} vs "
                f"{reference['latency_ms']['p99']} ms)", intake["p99_to_reference"] <= REFERENCE_P99_RATIO),
    ]


def _stored_everything(intake):
    """The errors and tickets targets of one intake phase."""
    label = intake_label(intake).replace("intake ", "", 1)
    errors = intake["non_2xx"] + sum(intake["socket_errors"].values())
    checks = [_target(f"intake errors, {label}", "0 non-2xx, 0 'database is locked', every 2xx stored",
                      f"{intake['non_2xx']} non-2xx, {intake['database_locked']} locked, "
                      f"{sum(intake['socket_errors'].values())} socket errors, "
                      f"every 2xx stored: {intake['rows']['every_2xx_stored']}",
                      errors == 0 and intake["database_locked"] == 0 and intake["rows"]["every_2xx_stored"])]
    rows = intake["rows"]
    if "created_request_ids" in rows:
        made = rows["tickets"] == rows["created_request_ids"] and \
            rows["duplicate_request_ids"] == 0 and rows["numbers_gap_free"] and \
            "error" not in rows["incoming_by_status"]
        checks.append(_target(f"intake tickets, {label}", "afterwards one ticket per created RequestId, "
                              "gap-free numbers, no delivery failed",
                              f"{rows['tickets']} tickets for {rows['created_request_ids']} RequestIds, "
                              f"gap-free: {rows['numbers_gap_free']}, "
                              f"deliveries by status: {rows['incoming_by_status']}", made))
    return checks


def _counts(by_status):
    """`201: 45, 409: 60`: the same text whether the counts come from this run or a saved report (JSON keys are
    text)."""
    return ", ".join(f"{status}: {count}" for status, count in by_status.items())


def _row(*cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _percentiles(result):
    """`p50 / p95 ms`, or that no request was answered within the run."""
    return f"{_latency(result, 'p50', 'p95')} ms" if result["requests"] else "no answer"


def _latency(result, *names):
    return " / ".join(f"{result['latency_ms'][name]}" for name in names)


def _phase_tables(results):
    phases = results["phases"]
    lines = ["| phase | req/s | p50 / p95 / p99 ms | non-2xx | worker RSS MB | CPU ms per delivery: workers, "
             "PostgreSQL; host busy |", "|---|---|---|---|---|---|"]
    intake_names = [name.format(backend=backend) for backend in ("sqlite", "postgresql") for name in INTAKE_PHASES]
    for name in ("roof", *intake_names):
        if name in phases:
            result = phases[name]
            label = intake_label(result) if name.startswith("intake") else name.replace("_", " ")
            runs = [result, result["reference"]] if "reference" in result else [result]
            for run, run_label in zip(runs, (label, f"durable write reference {result.get('backend')}")):
                cpu = run.get("cpu_ms_per_delivery")
                spent = (f"{cpu['workers']}, {cpu['postgres']}; {round(100 * run['host_busy_share'])} %"
                         if cpu else "-")
                lines.append(_row(run_label, run["requests_per_second"], _latency(run, "p50", "p95", "p99"),
                                  run["non_2xx"], run["worker_peak_rss_mb"], spent))
    for backend in ("sqlite", "postgresql"):
        lists = phases.get(f"lists_{backend}")
        if not lists:
            continue
        lines += ["", f"Pages, {backend} (p50 / p95 ms with one client; with 16 connections; req/s with 16):", "",
                  "| page | " + " | ".join(f"{lists[size]['tickets']:,} tickets, {lists[size].get('log_rows', 0):,} "
                                           f"log rows" for size in ("small", "large")) + " | one client p95 ratio |",
                  "|---|---|---|---|"]
        for page in (*PAGES, "search"):
            if any(page not in lists[size]["pages"] for size in ("small", "large")):
                continue
            cells = []
            for size in ("small", "large"):
                result = lists[size]["pages"][page]
                one, many = result.get("one_client") or result, result.get("connections_16") or result
                errors = one["non_2xx"] + many["non_2xx"]
                cells.append(f"{_percentiles(one)}; {_percentiles(many)}; "
                             f"{many['requests_per_second']}/s" + (f", {errors} non-2xx" if errors else ""))
            little = _one_client_p95(lists["small"], page)
            big = _one_client_p95(lists["large"], page)
            ratio = f"{big / little:.2f} x" if little and big != float("inf") and little != float("inf") else "-"
            lines.append(_row(page.replace("_", " "), *cells, ratio))
        lines.append(_row("generator (s)", *(lists[size]["generate_seconds"] for size in ("small", "large")), ""))
        lines.append(_row("log generator (s)",
                          *(lists[size].get("generate_logs_seconds") for size in ("small", "large")), ""))
        lines.append(_row("worker peak RSS (MB)", *(lists[size]["worker_peak_rss_mb"] for size in ("small", "large")),
                          ""))
    lines += table_api.markdown_lines(phases, _row)
    trip = phases.get("decision_round_trip")
    if trip:
        lines += ["", f"Decision round trip: {trip['decisions']} approvals one after another, p50 "
                  f"{trip['latency_ms']['p50']} ms, p95 {trip['latency_ms']['p95']} ms, "
                  f"answers {_counts(trip['statuses'])}, "
                  f"{trip['token_fetches']} token fetches, EPM applied {trip['epm_applied']}, worker RSS "
                  f"{trip['worker_peak_rss_mb']} MB."]
    cpu = phases.get("inprocess")
    if cpu:
        lines += ["", "CPU per request in process (`python -m bench.inprocess`: the WSGI app called directly, best of "
                  "three rounds): " + ", ".join(f"{name.replace('_', ' ')} {cpu[name]['cpu_us_per_request']} µs"
                                                for name in ("roof_noop", "broker_healthz", "webhook_sqlite",
                                                             "api_first_page_sqlite", "list_first_page_sqlite")
                                                if name in cpu) + "."]
    pair = phases.get("two_instances")
    if pair:
        intake, decided = pair["intake"], pair["decisions"]
        lines += ["", f"Two instances on one PostgreSQL: {intake['requests_per_second']} deliveries/s over both "
                  f"(the same RequestIds sent to both), {intake['rows']['tickets']} tickets, "
                  f"{intake['rows']['duplicate_request_ids']} duplicates, numbers gap-free: "
                  f"{intake['numbers_gap_free']}; {decided['tickets_decided']} tickets decided on both at once "
                  f"(answers {_counts(decided['answers'])}), EPM applied {decided['epm']['applied']}, "
                  f"{decided['epm']['token_fetches']} token fetches across 4 workers and the scheduler."]
    return lines


DEPLOYMENT = DOCS.parent / "deployment.md"
_START = "<!-- bench:two_instances (written by scripts/bench from bench/results/latest.json) -->"
_END = "<!-- /bench:two_instances -->"


def two_instances_summary(results):
    pair = results["phases"].get("two_instances")
    if not pair:
        return None
    intake, decided = pair["intake"], pair["decisions"]
    run = _run_of(results, "two_instances")
    # One instance's figure compares only when the same run measured it.
    single = results["phases"].get("intake_postgresql") if _run_of(results, "intake_postgresql") is run else None
    lines = [
        f"Run of {run['started_at']} ({run['machine']['cpus']} CPUs shared by both instances, the scheduler,",
        "PostgreSQL and wrk; load average "
        f"{run['machine']['load_average_at_start']} at the start):",
        "",
        "| | measured |",
        "|---|---|",
        _row("deliveries/s over both instances (8 connections each, the same RequestIds to both)",
             intake["requests_per_second"]),
    ]
    if single:
        lines.append(_row("deliveries/s on one instance (16 connections), for comparison",
                          single["requests_per_second"]))
    lines += [
        _row("tickets / duplicate tickets / numbers gap-free", f"{intake['rows']['tickets']} / "
             f"{intake['rows']['duplicate_request_ids']} / {intake['numbers_gap_free']}"),
        _row("non-2xx answers / every 2xx stored", f"{intake['non_2xx']} / {intake['every_2xx_stored']}"),
        _row("tickets decided on both instances at once / answers",
             f"{decided['tickets_decided']} / {_counts(decided['answers'])}"),
        _row("delivered / applied by EPM / calls EPM received",
             f"{decided['delivered']} / {decided['epm']['applied']} / {decided['epm']['received']}"),
        _row("EPM token fetches (4 web workers and the scheduler)", decided["epm"]["token_fetches"]),
        "",
        "On a 2-core machine the second instance adds no capacity (the cores are shared); the point",
        "of the run is that the rules hold. On separate hosts, web capacity grows with hosts until",
        "the PostgreSQL primary's commit rate is the limit.",
    ]
    return "\n".join(lines)


def _run_of(results, phase):
    """The run (started_at, machine) that measured `phase` of `results` (the report itself unless merged)."""
    return next((run for run in results.get("runs", []) if phase in run["phase_names"]), results)


def write_deployment_numbers(results, path=DEPLOYMENT):
    """Replace the measured section of docs/deployment.md with this run's two-instance numbers."""
    summary = two_instances_summary(results)
    if summary is None or not Path(path).exists():
        return False
    text = Path(path).read_text()
    if _START not in text or _END not in text:
        return False
    before, rest = text.split(_START, 1)
    _, after = rest.split(_END, 1)
    Path(path).write_text(f"{before}{_START}\n{summary}\n{_END}{after}")
    return True


def _run_line(run):
    """One run's header: when, on which commit, and how loaded the host was."""
    machine = run["machine"]
    commit = f" on {run['commit']}" if run.get("commit") else ""
    return (f"Run of {run['started_at']}{commit} ({', '.join(run['phase_names'])}), "
            f"{run['settings']['seconds_per_run']} s per measurement: load average "
            f"{machine['load_average_at_start']} at the start and {machine['load_average_at_end']} at the end.")


def merge(reports):
    """One report of several saved runs: a later run's phases replace an earlier one's, and `runs` names each
    run with the phases it contributed, so the page says when and on what each figure was measured."""
    merged = {**reports[0], "phases": {}, "runs": []}
    for run in reports:
        merged["phases"].update(run["phases"])
        merged["complete"] = merged.get("complete", True) and run.get("complete", True)
    for run in reports:
        names = [name for name in run["phases"] if merged["phases"][name] is run["phases"][name]]
        if names:
            merged["runs"].append({"started_at": run["started_at"], "commit": run.get("commit"),
                                   "machine": run["machine"], "settings": run["settings"], "phase_names": names})
    if len(merged["runs"]) == 1:
        only = merged.pop("runs")[0]
        merged.update(started_at=only["started_at"], commit=only["commit"], machine=only["machine"],
                      settings=only["settings"])
    return merged


def write_markdown(results, path):
    """docs/performance.md: method, targets and every measured number of `results`."""
    settings, machine = results["settings"], results["machine"]
    lines = [
        "# Performance",
        "",
        "Measured by `scripts/bench` (`python -m bench`; `--quick` for a short trial run), which starts",
        "real gunicorn processes on loopback, loads them with wrk, and writes `bench/results/latest.json`",
        "and this page. Every number below comes from that file; nothing here is typed by hand except",
        "the explanations.",
        "",
        f"{machine['cpus']} CPUs, Python {machine['python']}, {machine['wrk']};",
        f"gunicorn {settings['gunicorn_workers']} {settings['worker_class']} workers"
        f"{' of ' + str(settings['gunicorn_threads']) + ' threads' if settings.get('gunicorn_threads', 1) > 1 else ''},"
        f" wrk {settings['connections']}"
        f" connections over {settings['wrk_threads']} threads; each measurement after a warm-up. The load average"
        " is the host's: other work on it slows absolute numbers; the ratio"
        " targets compare figures measured side by side in one run.",
        "",
    ]
    if not results.get("runs"):
        lines += [_run_line({**results, "phase_names": list(results["phases"])}), ""]
    if results.get("runs"):
        lines += [f"**{len(results['runs'])} runs on this page**, each measuring the phases named:", ""]
        lines += [f"- {_run_line(run)}" for run in results["runs"]] + [""]
    if results.get("note"):  # set by hand on a saved report, e.g. what code its figures were measured on
        lines += [results["note"], ""]
    if not results.get("complete", True):
        lines += [f"**This run was cut short**: it measured only {', '.join(results['phases'])}.", ""]
    lines += [
        "## Targets",
        "",
        "| what | target | measured | met |",
        "|---|---|---|---|",
    ]
    for target in results["targets"]:
        lines.append(_row(target["what"], target["target"], target["measured"], "yes" if target["met"] else "**no**"))
    missed = [target for target in results["targets"] if not target["met"]]
    if missed:
        lines += ["", "## Targets this run missed, and why", ""]
        for target in missed:
            reason = next((text for prefix, text in WHY_MISSED.items() if target["what"].startswith(prefix)),
                          "Not analysed yet.")
            lines.append(f"- **{target['what']}** ({target['measured']}; target {target['target']}): {reason}")
    if results["phases"].get("profile"):
        lines += profile.markdown(results["phases"]["profile"])
    lines += ["", "## Numbers", ""] + _phase_tables(results) + ["", METHOD, table_api.METHOD]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


PAGE_REASON = (
        "each list and log page reads its 50 rows through one index seek (task_newest for tickets, the primary "
        "key for the logs: tests/tickets/test_tickets_query_plans.py and tests/ops/test_ops_query_plans.py check "
        "the plans), so read the p50 and the ratio to the small history: a page that grew with history lost its "
        "index; one slow at both sizes spends its time outside the database; one slow only at p95 waited for "
        "the CPU the other work on this host had.")

# What a missed target means, shown only for the targets a run misses. Causes found by
# profiling the broker on this machine (see the notes in each reason).
WHY_MISSED = {
    "intake throughput against the durable write reference": (
        "on SQLite, writes queue on the database's one write lock (app/db.py: writers wait on a lock file, so "
        "the next begins as the lock is released): a delivery holds it for its statements and its fsync, "
        "the reference for one INSERT and its fsync, so the ratio is the share of the lock's time that is "
        "the fsync. On PostgreSQL each of the 2 sync workers waits on its delivery's round trips while the "
        "workers, wrk and the server share 2 cores: the numbers table's last column shows what a delivery "
        "costs in the workers (Flask, Basic, marshmallow, the ticket's rows) and in the server, against the "
        "reference's; a created delivery is 8 statements in 3 round trips and an update 8 in 2 "
        "(tests/intake/test_intake_statements.py), each statement planned once per connection (app/db.py, "
        "prepared), into tables of 3 to 11 indexes (the ticket's trigram search index among them), where the "
        "reference makes one INSERT into a table of one index."),
    "intake p99 against the durable write reference": (
        "p99 follows throughput: 16 connections queue on 2 sync workers, so a request waits behind up to 7 "
        "others, each costing what the throughput target's reason says."),
    "intake tickets": (
        "some stored deliveries did not become their ticket after the load: see the deliveries by status "
        "and the scheduler's log."),
    "EPM token fetches": (
        "every process of a deployment shares one access token through the database (app/epm/tokens.py), "
        "so a run should make one token request; more than one means a token expired or EPM refused one "
        "during the run (each 401 costs one new token for everyone)."),
    "decision round trip": (
        "a decision is two write transactions around the call to EPM (recorded already claimed for its first "
        "attempt; then the attempt's outcome, work note and call log together), each a FULL-synchronous SQLite "
        "commit, and many small queries whose SQL peewee builds anew on every call; "
        "EPM's update event for the previous decision reaches the other worker at the same moment and its "
        "inline processing holds the write lock meanwhile. The margin is a few ms either way on this machine."),
    "search": (
        "text matching few tickets (a person, a machine, a file hash) is looked up through its rarest trigrams "
        "in the search index (migration 28), each candidate's document checked for the text, and text matching "
        "thousands walks the newest-first index (app/tickets/search.py). A trigram's share of the tickets stays "
        "the same as the history grows, so its list of tickets grows with it: a machine's name ANDs lists of "
        "15,000, 40,000 and 96,000 tickets at a million where it reads a hundredth of that at 10,000, and "
        "reading an entry costs a small share of checking a candidate (app/tickets/search.py, "
        "SQLITE_CHECK_COST_IN_ENTRIES). Every page's navigation also counts the tickets awaiting a decision, "
        "200 in either history, through deeper trees at a million."),
    "Table API": (
        "an answer is two queries (the page with every field it shows, and its count; "
        "tests/servicenow_api/test_servicenow_api_reads.py), the LIKE narrowed through the ticket search "
        "index (app/tickets/search.py), the IN through the number's unique index; what is left is rendering "
        "each record and, under load, the CPU the other work on this host takes (the load average above)."),
    "ticket page": (
        "the page's decision context (app/tickets/context.py) counts the earlier requests of the same person, "
        "the same file hash and the same publisher and product of the 90 days before the ticket as a range of "
        "an index of each, at most 501 each, with how each ended kept on its ticket (migration 32, "
        "app/tickets/outcome.py) in the index: each range is read from its index alone "
        "(tests/tickets/test_tickets_query_plans.py checks the plans), and the ten listed per group by id. "
        "Every page's navigation also counts the tickets awaiting a decision (app/web/ticket_list.py, "
        "awaiting_count: undecided tickets of the last expire_pending_hours, each checked for a decision and "
        "for EPM's final one), 200 in either history, through deeper trees at a million."),
    **{page.replace("_", " "): PAGE_REASON for page in PAGES if page != "ticket_page"},
}

METHOD = """## How it is measured

- **Load generator: wrk** (Debian's package; the bench installs it with apt-get when it runs as
  root and it is missing, and stops with a clear message otherwise). wrk holds a fixed number of
  connections (16) for the whole run, which is what a burst of EPM deliveries or a room of
  approvers looks like, and it is written in C: on a 2-core machine the load generator shares the
  cores with the server, and a Python generator (locust) would take much of the CPU it measures.
  Lua scripts (`bench/lua/`) vary each request and count every status code, so non-2xx answers
  and "database is locked" bodies are counted exactly.
- **Roof**: `bench/roof.py`, a no-op Flask JSON endpoint, under the same gunicorn command the
  broker runs with (gunicorn.conf.py: 2 sync workers), loaded by the same wrk settings.
- **Durable write reference**: `bench/reference.py`, the least a service that must not lose a
  delivery does: HTTP Basic checked against a constant, the JSON body parsed, the raw body
  stored with one peewee INSERT, at the broker's durability (SQLite WAL with `synchronous`
  FULL on a connection opened per request; PostgreSQL with `synchronous_commit` on, on a
  pooled connection), under the same gunicorn settings. Each intake phase runs it beside the
  broker on a database of its own and alternates their loads over 3 rounds (reference, broker,
  reference, ...); each figure is the median round by throughput, and non-2xx answers are
  summed over all rounds. The intake's targets are ratios to it: each round's intake over the
  reference round just before it, the median of the three.
- **Worker class**: `WEB_THREADS=8 scripts/bench --phase roof --phase intake_sqlite --phase
  intake_postgresql --phase lists_sqlite --large 100000 --seconds 8 --no-docs --output
  bench/results/threads-8.json`, and the same with `WEB_THREADS=1` into `threads-1.json` (both
  kept in bench/results, run on 2026-12-01 within half an hour of each other, on the code of
  that day, whose intake phases ran the since removed queued intake), compare 8-thread
  gthread workers with the sync default. Threaded, the roof answered 6105 req/s against 3927:
  gthread keeps wrk's connections alive, sync workers close each one. At 100,000 tickets the HTML list
  pages' p95 rose from 30 and 35 ms to 48 and 54 ms, and some runs of a page were several times
  slower than others (the 10,000-ticket API first page: 407 req/s threaded against 1028 sync).
  Kept-alive connections also stay with the worker that accepted them: in a threaded
  PostgreSQL intake trial outside the bench (a lead, not a figure) one worker served nearly
  all of wrk's connections while the other idled.
  So the shipped default stays sync.
- **Garbage collection**: a worker freezes what loading the app made (gunicorn.conf.py,
  `post_worker_init`: Python's `gc.freeze`), some 90,000 objects that live as long as it does.
  Python's full collection otherwise walks all of them, and every request queued at that worker
  waits for it: `python -m bench.profile --backend postgresql --deliveries 4000` without the hook
  (commit f98e8a6's message; the test suite ran beside it) saw one full collection of 104 ms,
  and none with it. `python -m bench.profile` calls the same hook after loading the app and
  reports the collector's runs during its deliveries ("Where one delivery's time goes").
- **In process**: `python -m bench.inprocess` (the `inprocess` phase) calls the WSGI apps directly
  and reports CPU per request for the roof, the broker's `/healthz`, a delivery made into its
  ticket, and the
  first page of the JSON API and of the HTML list over 2,000 tickets, so the broker's own cost
  can be read apart from gunicorn's, the kernel's and wrk's.
- **Instructions**: `python -m bench.instructions [--backend sqlite|postgresql] [--deliveries 200]`
  counts, with valgrind's callgrind, the instructions the broker's process runs per delivery of
  the intake mix, in process (a run of N deliveries minus a run of none, from the same start and
  hash seed). It moves far less than a time, but it does move with the host's load: valgrind
  slows the process some fifty times, so time-based caches (the one-second account cache, the
  configuration check) expire more often when other work shares the cores (the same code has
  counted 3.96 M a delivery on a quiet host and up to 4.59 M beside test runs). Two versions of
  the broker's code are compared by runs made side by side on a quiet host, each on its own core,
  where they agree to well under a per cent. It leaves out the PostgreSQL server's work and every
  wait: it is no measure of throughput.
- **Intake**: the real webhook with real Basic auth (an `api` account, scrypt-hashed). Each
  request is a new delivery built from the fixtures' bodies (`tests/fixtures`): a created event,
  then the update event for the same RequestId, alternating Application Access and Admin Access.
  The `intake sqlite` and `intake postgresql` phases run the broker as shipped: each delivery
  becomes its ticket in one transaction before its 2xx, with SQLite's `[database]
  sqlite_synchronous = "FULL"` (PostgreSQL: `synchronous_commit` on), and a `jitbroker
  scheduler` process running beside it as in a deployment.
  Afterwards the stored rows are counted, for every intake phase: every 2xx must have its row (a
  few more rows than 2xx answers are requests wrk had in flight when it stopped), every created
  RequestId must have exactly one ticket, no delivery may have failed, and ticket
  numbers must be gap-free.
- **Pages** (`lists_sqlite`, `lists_postgresql`): `python -m bench.generate --database-url URL
  --tickets N` fills a database with bulk inserts in transactions of 50,000 tickets (COPY on
  PostgreSQL), and `python -m bench.logs --database-url URL --rows M` its four logs, ten rows per
  ticket (a million tickets: ten million log rows), each table by the database itself from a
  series (INSERT ... SELECT), then ANALYZE. Each page is loaded by one client (one wrk connection:
  what one person waits for; the targets) and by 16 connections. Ticket pages: the approvers'
  browser list (first page, what awaits a decision; deep page, its `after` cursor 90% down the
  history; free-text searches over all tickets, `decision=all`, for a person, a machine, an
  application and a file hash in rotation), a ticket's page, and the
  JSON list's first and deep page (`cursor`). Log pages, for an admin: the incoming-request,
  outbound-call, application and audit logs' browser pages and JSON twins, each the first page
  and the page `before` the entry 90% down in rotation. The ratio is one client's p95 at the
  large history over the small one's. Both histories are served side by side and one client's
  load of each page alternates between them over three rounds (small, large, small, ...); a page's
  figures are the round whose ratio is the median, so a change in the machine's speed touches both
  sides of a round alike (runs before 2026-12-06T13:00 measured the small history first and the
  large one after it, minutes apart). Both histories come from an estate that grew with them
  (`generate.Estate.grown_to`: about 100 tickets per person, 50 per machine and 130 per build at
  either size) and share their last day: 200 tickets awaiting a decision, one a minute up to now,
  the closed ones spread over the two years before that day. So a search, the list or a ticket page
  shows as many rows with either, the list of what awaits a decision and its count read the same
  day's tickets, and the ratio is the history's cost. Runs before 2026-12-06T15:00 spread the
  awaiting tickets with the rest (13 of them in the last day at 10,000 tickets, 200 at 1,000,000: the
  list's first page showed 13 rows against 50), searched what awaits a decision (mostly empty pages)
  and kept one build per application at 10,000 tickets (a hash found 137 tickets against 1,690); the
  run of 2026-12-06T15:28 (710d542) and the SQLite run of 16:06 (e53f029) had the closed history run
  up to the awaiting tickets (10 closed tickets in the last day at 10,000, 1,122 at 1,000,000); runs
  before 2026-12-06T10:00 used one estate for both sizes. None of those is the same measure.
- **Decision round trip**: tickets arrive from the fake EPM (`app/epm/fake.py`, on loopback)
  through the webhook; each is approved with `POST /api/x_bets_pmc_jit/tickets/<number>/decision`,
  one after another, timed until the 201 that means EPM acknowledged it. The fake counts the
  token requests and sends EPM's update event back for each applied decision.
- **Memory**: the peak resident set (`VmHWM` in `/proc/<pid>/status`) of the larger gunicorn
  worker at the end of each phase.
- **Two instances** (`two_instances`): two gunicorn masters on different ports and one
  `jitbroker scheduler` on one PostgreSQL database; see docs/deployment.md.
"""
