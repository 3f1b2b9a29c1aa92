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
