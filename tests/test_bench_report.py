"""docs/performance.md made from several saved benchmark runs: each figure is named with the run that measured it."""
from bench import report


def _run(started_at, commit, phases, load=(1.0, 1.0, 1.0), seconds=10):
    return {"started_at": started_at, "commit": commit, "complete": True, "settings": {"seconds_per_run": seconds},
            "machine": {"cpus": 2, "load_average_at_start": list(load), "load_average_at_end": list(load)},
            "phases": {name: {"measured": value} for name, value in phases.items()}}


def test_a_later_runs_phase_replaces_an_earlier_ones_and_each_run_names_what_it_measured():
    merged = report.merge([_run("T1", "aaa", {"intake_sqlite": 1, "lists_sqlite": 2}),
                           _run("T2", "bbb", {"intake_sqlite": 3}, load=(0.5, 0.5, 0.5), seconds=5)])

    assert merged["phases"] == {"intake_sqlite": {"measured": 3}, "lists_sqlite": {"measured": 2}}
    lines = [report._run_line(run) for run in merged["runs"]]
    assert lines == [
        "Run of T1 on aaa (lists_sqlite), 10 s per measurement: load average [1.0, 1.0, 1.0] at the start "
        "and [1.0, 1.0, 1.0] at the end.",
        "Run of T2 on bbb (intake_sqlite), 5 s per measurement: load average [0.5, 0.5, 0.5] at the start "
        "and [0.5, 0.5, 0.5] at the end.",
    ]


def test_a_run_whose_phases_were_all_replaced_is_not_named_and_one_run_left_is_the_pages_run():
    merged = report.merge([_run("T1", "aaa", {"intake_sqlite": 1}), _run("T2", "bbb", {"intake_sqlite": 2})])

    assert "runs" not in merged
    assert (merged["started_at"], merged["commit"]) == ("T2", "bbb")


def test_a_merge_with_a_cut_short_run_is_cut_short():
    cut = {**_run("T2", "bbb", {"lists_sqlite": 2}), "complete": False}

    assert report.merge([_run("T1", "aaa", {"intake_sqlite": 1}), cut])["complete"] is False


def test_the_deployment_page_compares_two_instances_with_one_only_from_the_same_run():
    pair = {"intake": {"requests_per_second": 300, "rows": {"tickets": 1, "duplicate_request_ids": 0},
                       "numbers_gap_free": True, "non_2xx": 0, "every_2xx_stored": True},
            "decisions": {"tickets_decided": 1, "answers": {"200": 1}, "delivered": 1,
                          "epm": {"applied": 1, "received": 1, "token_fetches": 1}}}
    earlier = {**_run("T1", "aaa", {"two_instances": 0, "intake_postgresql": 0})}
    earlier["phases"] = {"two_instances": pair, "intake_postgresql": {"requests_per_second": 111}}
    later = _run("T2", "bbb", {"intake_postgresql": 0})
    later["phases"]["intake_postgresql"] = {"requests_per_second": 999}

    alone = report.two_instances_summary(earlier)
    merged = report.two_instances_summary(report.merge([earlier, later]))

    assert "Run of T1" in alone and "| 111 |" in alone
    assert "Run of T1" in merged and "999" not in merged and "one instance" not in merged


def test_the_profile_section_says_how_the_garbage_collector_ran_and_an_older_run_without_it_still_renders():
    from bench import profile

    parts = {"auth": 0.5, "the rest": 1.5}
    measured = {"deliveries": 10,
                "sqlite": {"ms_per_delivery": 2.0, "parts_ms": parts},
                "postgresql": {"ms_per_delivery": 2.0, "parts_ms": parts, "garbage_collection": {
                    "runs_by_generation": {"0": 41, "1": 3}, "ms_per_delivery": 0.002, "longest_ms": 0.31,
                    "tracked_objects": 2704}}}

    lines = profile.markdown(measured)

    assert ("- postgresql: 41 of generation 0, 3 of generation 1; 0.002 ms per delivery, the longest 0.31 ms; "
            "2704 objects left in its reach.") in lines
    assert not any(line.startswith("- sqlite:") for line in lines), "a run measured before it was reported"
