"""The operations dashboard: requests per day, decisions, time to decision, failures and patterns to watch."""
import re
from datetime import datetime, time, timedelta

import pytest

from app import contract
from app.models import Decision, Task, utcnow
from app.logs import store as log_store
from app.ops.dashboard import axis_top, dashboard, denial_bursts, nearest_rank
from app.logs.models import OutboundCall
from tests import factories

WEBHOOK = "/api/x_bets_pmc_jit/authorization_request_webhook_handler"


class Seed:
    """Tickets and decisions at chosen moments around day A (two days ago, UTC)."""

    def __init__(self, deliver):
        self.deliver = deliver
        self.now = utcnow()
        self.day_a = (self.now - timedelta(days=2)).date()

    def at(self, clock, days=0):
        hours, minutes = map(int, clock.split(":"))
        return datetime.combine(self.day_a + timedelta(days=days), time(hours, minutes))

    def ticket(self, opened_at, user="alice", product="Visual Studio Code", admin=False):
        body = (factories.admin_request(UserName=user) if admin
                else factories.application_request(user=user, productName=product))
        number = self.deliver(body).json["result"]["ticket"]
        Task.update(opened_at=opened_at).where(Task.number == number).execute()
        return Task.get(Task.number == number)

    @staticmethod
    def decide(task, decision, after, status=contract.DELIVERY_DELIVERED, by="jchen"):
        return Decision.create(task=task, decision=decision, reason="seeded", decided_by=by, status=status,
                               decided_at=task.opened_at + after, ticket_url="")


@pytest.fixture
def seeded(app, deliver, client):
    seed = Seed(deliver)
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    # Application Access: three users want VS Code within a day; Notepad++ is spread over four days.
    t1 = seed.ticket(seed.at("09:00"), "alice")
    t2 = seed.ticket(seed.at("10:00"), "bob")
    t3 = seed.ticket(seed.at("20:00"), "carol")                              # after hours
    seed.ticket(seed.at("06:59"), "dave", "Wireshark")                       # after hours
    seed.ticket(seed.at("08:00", days=-3), "erin", "Notepad++")
    seed.ticket(seed.at("09:00", days=-1), "frank", "Notepad++")
    seed.ticket(seed.at("10:00"), "gina", "Notepad++")
    seed.ticket(seed.now - timedelta(days=40), "old", "Visual Studio Code")   # outside the window
    # Admin Access.
    a1 = seed.ticket(seed.at("07:00"), "CORP\\hank", admin=True)
    seed.ticket(seed.at("19:00"), "CORP\\ivy", admin=True)                   # after hours
    burst = [seed.ticket(seed.at("12:00"), f"CORP\\user{n}", admin=True) for n in range(5)]

    seed.decide(t1, "Approved", minutes(10))
    seed.decide(t2, "Denied", minutes(30))
    seed.decide(t3, "Approved", minutes(120))
    refused = seed.decide(a1, "Approved", minutes(5), status=contract.DELIVERY_FAILED)
    seed.decide(a1, "Approved", minutes(60))
    for task, after in zip(burst, (60, 70, 80, 90, 110)):
        seed.decide(task, "Denied", minutes(after), by="mallory")

    OutboundCall.create(method="POST", url="https://x/a", path="/a", status=503, duration_ms=20.0, attempt=1,
                        what="admin decision", decision=refused, error="HTTP 503")
    OutboundCall.create(method="POST", url="https://x/a", path="/a", status=200, duration_ms=20.0, attempt=2,
                        what="admin decision", decision=refused)
    assert deliver({"EventType": "URM_Native_Ticket_Created"}).status_code == 400
    for _ in range(2):
        assert client.post(WEBHOOK, json={}, headers={"Authorization": "Basic bm9ib2R5Om5vcGU="}).status_code == 401
    assert log_store.flush(10)
    return seed


def test_requests_per_day_by_kind(seeded):
    board = dashboard(seeded.now)
    per_day = {row["date"]: row for row in board["requests_per_day"]}
    assert len(per_day) == 30
    assert per_day[seeded.day_a] == {"date": seeded.day_a, "application": 5, "admin": 7, "total": 12}
    assert per_day[seeded.day_a - timedelta(days=1)]["application"] == 1
    assert board["requests"] == {"application": 7, "admin": 7}


def test_approvals_denials_and_time_to_decision(seeded):
    board = dashboard(seeded.now)
    assert board["decisions"] == {"approved": 3, "denied": 6}
    # First decision EPM did not refuse, per ticket: 10, 30, 120 and 60 minutes, and the burst's 60–110.
    assert board["time_to_decision"] == {"decided_tickets": 9, "median_seconds": 4200, "p90_seconds": 7200}


def test_decisions_by_outcome_and_time_to_decision_spread(seeded):
    board = dashboard(seeded.now)
    assert board["decision_outcomes"] == {"approved": 3, "denied": 6, "refused": 1}
    # 10 and 30 minutes, 60 to 110 minutes for the burst and the rest, 120 minutes.
    assert [(row["label"], row["count"]) for row in board["time_to_decision_spread"]] == [
        ("< 5 min", 0), ("5–15 min", 1), ("15–60 min", 1), ("1–4 h", 7), ("4–24 h", 0), ("≥ 1 day", 0)]


def test_charts_scale_bars_to_a_round_axis_and_describe_themselves(seeded):
    charts = dashboard(seeded.now)["charts"]
    per_day = charts["requests"]
    assert len(per_day["bars"]) == 30
    assert [tick["value"] for tick in per_day["ticks"]] == [0, 10, 20]
    day_a = next(bar for bar in per_day["bars"] if bar["tip"].startswith(seeded.day_a.isoformat()))
    assert day_a["tip"] == f"{seeded.day_a.isoformat()}: 5 Application Access, 7 Admin Access"
    application, admin = day_a["segments"]
    # 12 of 20 fills 60% of the plot's 200 units; the admin part sits on the application part.
    assert (application["series"], admin["series"]) == ("application", "admin")
    assert application["height"] + admin["height"] == pytest.approx(120, abs=0.2)
    assert admin["y"] + admin["height"] == pytest.approx(application["y"], abs=0.2)
    assert [bar["label"] for bar in per_day["bars"]].count("") == 25  # a label every seventh day, the last one too
    assert per_day["bars"][-1]["label"] == f"{seeded.now.day} {seeded.now:%b}"
    assert f"the busiest day was {seeded.day_a.isoformat()} with 12" in per_day["description"]
    assert charts["outcomes"]["description"] == "Decisions in the last 30 days: Approved 3, Denied 6, Refused by EPM 1."
    time_bars = charts["decision_time"]["bars"]
    assert [bar["total"] for bar in time_bars] == [0, 1, 1, 7, 0, 0]
    # Rows scale to the largest count: 7 tickets fill the room for bars, 1 ticket a seventh of it.
    assert time_bars[3]["segments"][0]["width"] == pytest.approx(7 * time_bars[1]["segments"][0]["width"], abs=0.5)
    assert charts["decision_time"]["description"].startswith("9 tickets decided")


def test_empty_charts_say_so(app):
    charts = dashboard()["charts"]
    assert charts["requests"]["description"] == "No requests in the last 30 days."
    assert all(not bar["segments"] for bar in charts["requests"]["bars"])
    assert [tick["value"] for tick in charts["requests"]["ticks"]] == [0, 1]
    assert [bar["total"] for bar in charts["outcomes"]["bars"]] == [0, 0, 0]
    assert all(not bar["segments"] for bar in charts["outcomes"]["bars"])
    assert charts["decision_time"]["description"] == "No ticket opened in the last 30 days was decided."


@pytest.mark.parametrize(("largest", "top"), [(0, 1), (1, 1), (3, 5), (6, 10), (12, 20), (51, 100)])
def test_axis_top_is_one_two_or_five_times_a_power_of_ten(largest, top):
    assert axis_top(largest) == top


def test_failures(seeded):
    failures = dashboard(seeded.now)["failures"]
    assert failures["incoming_errors"] == 1
    assert failures["decision_deliveries_failed"] == 1
    assert failures["decision_delivery_attempts_failed"] == 1
    assert failures["decisions_waiting"] == 0
    assert failures["webhook_authentication_failures"] == 2


def test_flags_a_burst_of_denials(seeded):
    (burst,) = dashboard(seeded.now)["flags"]["denial_bursts"]
    assert burst["count"] == 5 and burst["deciders"] == ["mallory"]
    assert (burst["start"], burst["end"]) == (seeded.at("13:00"), seeded.at("13:50"))


def test_flags_after_hours_requests(seeded):
    after_hours = dashboard(seeded.now)["flags"]["after_hours_requests"]
    assert after_hours["count"] == 3
    assert {item["opened_at"].strftime("%H:%M") for item in after_hours["latest"]} == {"06:59", "19:00", "20:00"}


def test_flags_one_application_requested_by_many_users(seeded):
    (flag,) = dashboard(seeded.now)["flags"]["widely_requested_applications"]
    assert flag["application"] == "Visual Studio Code"
    assert flag["requesters"] == ["alice", "bob", "carol"]


def test_dashboard_page_shows_the_figures(seeded, as_admin):
    page = as_admin.get("/admin/dashboard").get_data(as_text=True)
    assert 'data-figure="approved">3<' in page
    assert 'data-figure="denied">6<' in page
    assert 'data-figure="median">1 h 10 min<' in page
    assert 'data-figure="p90">2 h<' in page
    assert 'data-figure="auth-failures">2' in page
    assert "5 denials from" in page and "<strong>Visual Studio Code</strong>: 3 users" in page


def test_dashboard_page_draws_each_chart_with_a_title_description_and_table(seeded, as_admin):
    page = as_admin.get("/admin/dashboard").get_data(as_text=True)
    for chart, title in (("requests-chart", "Requests per day"), ("outcomes-chart", "Decisions by outcome"),
                         ("decision-time-chart", "Time to decision")):
        assert re.search(rf'<svg class="chart chart-(?:columns|rows)" id="{chart}"[^>]*role="img"\s+'
                         rf'aria-labelledby="{chart}-title" aria-describedby="{chart}-desc"', page), chart
        assert f'<title id="{chart}-title">{title}</title>' in page
        assert re.search(rf'<desc id="{chart}-desc">[^<]+</desc>', page)
    assert "style=" not in page
    assert "<summary>Decisions by outcome as a table</summary>" in page
    assert re.search(r'<th scope="row">Refused by EPM</th><td>1</td>', page)
    assert re.search(r'<th scope="row">1–4 h</th><td>7</td>', page)
    # Day A has both kinds, two earlier days Application Access only; three outcomes; three bins hold tickets.
    assert page.count('<rect class="bar bar-') == 4 + 3 + 3


def test_dashboard_api_answers_in_the_result_envelope(seeded, client, admin_auth):
    result = client.get("/api/x_bets_pmc_jit/ops/dashboard", headers=admin_auth).json["result"]
    assert result["decisions"] == {"approved": 3, "denied": 6}
    assert result["flags"]["denial_bursts"][0]["count"] == 5
    assert result["requests_per_day"][-1]["date"] == seeded.now.date().isoformat()


def test_four_denials_in_an_hour_are_no_burst():
    start = datetime(2026, 11, 20, 9, 0)

    class Denial:
        def __init__(self, minutes):
            self.decided_at = start + timedelta(minutes=minutes)
            self.decided_by = "x"

    assert denial_bursts([Denial(m) for m in (0, 20, 40, 59)]) == []
    assert denial_bursts([Denial(m) for m in (0, 20, 40, 59, 61)]) == []
    assert len(denial_bursts([Denial(m) for m in (0, 20, 40, 59, 60)])) == 1


def test_percentiles_are_nearest_rank():
    assert nearest_rank([], 90) is None
    assert nearest_rank([5], 90) == 5
    assert nearest_rank(list(range(1, 11)), 90) == 9
    assert nearest_rank(list(range(1, 11)), 50) == 5


def test_the_request_totals_agree_with_the_days_the_chart_shows(app, deliver):
    now = datetime(2026, 3, 31, 12, 0)
    number = deliver(factories.application_request()).json["result"]["ticket"]
    Task.update(opened_at=datetime(2026, 3, 1, 18, 0)).where(Task.number == number).execute()
    board = dashboard(now)
    shown = sum(day["total"] for day in board["requests_per_day"])
    assert board["requests_per_day"][0]["date"].isoformat() == "2026-03-02"
    assert sum(board["requests"].values()) == shown, board["charts"]["requests"]["description"]
