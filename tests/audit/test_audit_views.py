"""The audit log page and its JSON twin: admins only, filtered by actor, action and dates."""
import re
from datetime import datetime

import pytest

from app.audit import service as audit
from tests.conftest import basic_auth

API = "/api/x_bets_pmc_jit/audit"


@pytest.fixture
def logged(app, monkeypatch):
    """Entries by two actors on two days."""
    plan = [(1, "ann", "sign_in"), (1, "bob", "decision"), (2, "ann", "state_change"), (2, "bob", "sign_in")]
    for day, actor, action in plan:
        monkeypatch.setattr(audit, "utcnow", lambda day=day: datetime(2026, 3, day, 9, 0))
        audit.record(action, actor, "ticket", "INC0010001", {"old": "New", "new": "On Hold"},
                     source_address="198.51.100.4")
    monkeypatch.undo()


def test_the_api_answers_admins_with_entries_oldest_first(client, admin_auth, logged):
    answer = client.get(API, headers=admin_auth)

    assert answer.status_code == 200
    result = answer.json["result"]
    assert [(e["actor"], e["action"]) for e in result] == [
        ("ann", "sign_in"), ("bob", "decision"), ("ann", "state_change"), ("bob", "sign_in")]
    assert result[0]["created_at"] == "2026-03-01T09:00:00.000000Z"
    assert result[0]["source_address"] == "198.51.100.4"
    assert result[0]["detail"] == {"old": "New", "new": "On Hold"}


def test_the_api_filters_by_actor_action_and_dates(client, admin_auth, logged):
    def actions(query):
        return [(e["actor"], e["action"]) for e in client.get(f"{API}?{query}", headers=admin_auth).json["result"]]

    assert actions("actor=ann") == [("ann", "sign_in"), ("ann", "state_change")]
    assert actions("action=sign_in") == [("ann", "sign_in"), ("bob", "sign_in")]
    assert actions("since=2026-03-02") == [("ann", "state_change"), ("bob", "sign_in")]
    assert actions("until=2026-03-01") == [("ann", "sign_in"), ("bob", "decision")]
    assert actions("actor=bob&action=sign_in&since=2026-03-01&until=2026-03-02") == [("bob", "sign_in")]


def test_bounds_at_the_ends_of_the_calendar_take_in_everything(client, admin_auth, logged):
    def actions(query):
        answer = client.get(f"{API}?{query}", headers=admin_auth)
        assert answer.status_code == 200, (query, answer.status_code)
        return [(e["actor"], e["action"]) for e in answer.json["result"]]

    everything = actions("")
    assert len(everything) == 4
    # The last day there is (no day after it), and times that fall outside years 1-9999 in UTC.
    for query in ("until=9999-12-31", "since=0001-01-01", "since=0001-01-01T00:00:00%2B01:00",
                  "until=9999-12-31T23:59:59-05:00"):
        assert actions(query) == everything, query
    assert actions("since=9999-12-31") == []


def test_the_api_pages_with_limit_and_offset(client, admin_auth, logged):
    answer = client.get(f"{API}?limit=2&offset=1", headers=admin_auth)

    assert [e["action"] for e in answer.json["result"]] == ["decision", "state_change"]


def test_the_api_refuses_a_bad_date_with_the_field_named(client, admin_auth, logged):
    answer = client.get(f"{API}?since=yesterday", headers=admin_auth)

    assert answer.status_code == 400
    assert answer.json["status"] == "failure"
    assert "since" in answer.json["fields"]


@pytest.mark.parametrize("value", ["%C2%85", "%C2%A0", "%E2%80%A8"], ids=["next line", "no-break space", "line sep"])
def test_a_bound_of_other_whitespace_is_refused_not_read_as_none(client, admin_auth, logged, value):
    answer = client.get(f"{API}?until={value}", headers=admin_auth)

    assert answer.status_code == 400
    assert "until" in answer.json["fields"]


def test_the_api_is_for_admins_only(client, app, approver_auth, api_auth, logged):
    assert client.get(API).status_code == 401
    assert client.get(API, headers=approver_auth).status_code == 403
    assert client.get(API, headers=api_auth).status_code == 403
    assert client.get(API, headers=basic_auth("root", "wrong-password")).status_code == 401


def test_the_api_accepts_an_admin_session(as_admin, logged):
    answer = as_admin.get(API)

    assert answer.status_code == 200
    # Signing in was itself recorded, after the fixture's entries.
    assert answer.json["result"][-1]["action"] == audit.SIGN_IN


def _actions_shown(page):
    return re.findall(r'data-label="Action">([^<]+)<', page)


def test_the_page_shows_entries_newest_first(as_admin, logged):
    page = as_admin.get("/admin/audit").get_data(as_text=True)

    # The admin signed in before the fixture's four entries were made.
    assert _actions_shown(page) == ["sign_in", "state_change", "decision", "sign_in", "sign_in"]
    assert "198.51.100.4" in page
    assert "New → On Hold" in page


def test_the_page_filters(as_admin, logged):
    page = as_admin.get("/admin/audit?actor=bob&since=2026-03-02&until=2026-03-02").get_data(as_text=True)

    assert "198.51.100.4" in page
    assert _actions_shown(page) == ["sign_in"]


def test_the_page_reports_a_bad_date(as_admin, logged):
    answer = as_admin.get("/admin/audit?since=not-a-date")

    assert answer.status_code == 400
    assert "is not a date" in answer.get_data(as_text=True)


def test_the_page_pages_through_older_entries(as_admin, app):
    for number in range(60):
        audit.record("sign_in", f"user-{number:02d}", "account", str(number))

    first = as_admin.get("/admin/audit").get_data(as_text=True)
    # 61 entries, newest first: user-59 down to user-10 fill the page; the admin's sign-in is oldest.
    assert "user-59" in first and "user-10" in first and "user-09" not in first
    older = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = as_admin.get(older).get_data(as_text=True)
    assert "user-09" in second and "user-00" in second and "user-10" not in second
    assert len(_actions_shown(second)) == 11
    assert 'rel="next"' not in second


def test_the_page_is_for_admins_only(web, approver, client, logged):
    assert client.get("/admin/audit").status_code == 302
    web.sign_in(approver.username)
    assert web.get("/admin/audit").status_code == 403


def test_admins_see_the_audit_log_in_the_navigation(as_admin):
    assert 'href="/admin/audit"' in as_admin.get("/admin/users").get_data(as_text=True)


def test_the_page_names_the_signing_key_by_id_and_asks_to_keep_a_generated_one_apart(as_admin, app):
    page = as_admin.get("/admin/audit").get_data(as_text=True)

    ring = app.extensions["audit_keys"]
    assert f'<code id="audit-key-id">{ring.current_id}</code>' in page
    assert ring.generated and 'id="audit-key-notice"' in page and "JITBROKER_AUDIT_KEY" in page
    assert all(key.decode() not in page for key in ring.keys.values())


@pytest.mark.parametrize("app_settings", [{"audit_key": "k" * 40}])
def test_a_configured_key_needs_no_notice(as_admin, app):
    page = as_admin.get("/admin/audit").get_data(as_text=True)

    assert app.extensions["audit_keys"].current_id in page
    assert 'id="audit-key-notice"' not in page and "k" * 40 not in page
