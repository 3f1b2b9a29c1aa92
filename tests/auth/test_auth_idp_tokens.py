"""The identity provider's tokens go when the last live session of their account is ended on purpose: sign-out
(from a tab whose session had already timed out too), an admin ending one or all of them. A time-out keeps them,
whether a page, a tab's own polling or nobody (the `forget_ended_sessions` job) comes back to it: with them the
provider goes on vouching for the person's Slack decisions (tests/chat/test_chat_slack_deciders.py). A copy of the
cookie of a session ended on purpose forgets nothing."""
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.auth.models import BrowserSession
from app.jobs.registry import JOBS, run_job
from app.models import Account, utcnow
from tests import factories
from tests.webclient import CONFIRMED, WebClient

ISSUER = "http://127.0.0.1:9/realms/corp"
END_SESSION = "https://idp.example.com/realms/corp/logout"


@pytest.fixture
def app_settings():
    return {"oidc_issuer": ISSUER, "oidc_client_id": "broker", "oidc_approver_groups": "jit-approvers",
            "public_url": "https://jit.example.com"}


def _provider_account(username="bo"):
    return factories.provider_account(username, ISSUER, f"sub-{username}", checked_minutes_ago=1)


def _tokens(account):
    return Account.get_by_id(account.id).idp_tokens


def _signed_in(app, account, idle_minutes=0):
    browser = WebClient(app.test_client())
    browser.open_session(account, through_idp=True, idle_minutes=idle_minutes)
    return browser


def test_signing_out_of_a_tab_whose_only_session_timed_out_forgets_the_tokens(app):
    """The page was open past the idle time; Sign out still knows whose session its cookie named."""
    account = _provider_account()
    laptop = _signed_in(app, account)
    token = laptop.token()
    laptop.leave_idle(31)
    assert laptop.request("POST", "/sign-out", data={"csrf_token": token}).status_code == 302
    assert _tokens(account) is None


def _copy_of(app, browser):
    """Another browser holding a copy of `browser`'s signed cookie, and a CSRF token of its session."""
    token = browser.token()
    copy = WebClient(app.test_client())
    with copy.client.session_transaction() as session:
        session.update(browser.session())
    return copy, token


@pytest.mark.parametrize("ended_by", ["sign-out", "an admin"])
def test_an_old_cookie_of_a_session_ended_on_purpose_cannot_forget_the_tokens(app, as_admin, ended_by):
    """The laptop's session was ended on purpose while the phone's went on; the phone's then only timed out, so the
    tokens stay for the provider's re-checks. A copy of the laptop's old cookie, with its CSRF token, names no
    session any more: its Sign out forgets nothing."""
    account = _provider_account()
    laptop, phone = _signed_in(app, account), _signed_in(app, account)
    old_cookie, token = _copy_of(app, laptop)
    if ended_by == "sign-out":
        assert laptop.post("/sign-out").status_code == 302
    else:
        record = BrowserSession.get(BrowserSession.key_digest == _digest(laptop))
        assert as_admin.post(f"/admin/users/{account.id}/sessions/{record.id}/end").status_code == 302
    phone.leave_idle(31)
    assert _tokens(account)

    answer = old_cookie.request("POST", "/sign-out", data={"csrf_token": token})

    assert answer.status_code == 302 and answer.headers["Location"].endswith("/sign-in")
    assert _tokens(account)


def test_signing_out_of_a_timed_out_tab_forgets_the_tokens_after_the_job_ran(app):
    """The job keeps the record of a session that only timed out while a browser may still hold its cookie, so the
    tab's Sign out still finds it."""
    account = _provider_account()
    laptop = _signed_in(app, account)
    token = laptop.token()
    laptop.leave_idle(31)
    assert run_job(JOBS["forget_ended_sessions"]).error is None

    assert laptop.request("POST", "/sign-out", data={"csrf_token": token}).status_code == 302
    assert _tokens(account) is None


def _digest(browser):
    from app.auth import sessions
    return sessions._key_digest(browser.session()[sessions.SESSION_ID])


def test_signing_out_of_a_timed_out_tab_keeps_the_tokens_a_live_session_needs(app):
    account = _provider_account()
    laptop, phone = _signed_in(app, account), _signed_in(app, account)
    token = laptop.token()
    laptop.leave_idle(31)
    assert laptop.request("POST", "/sign-out", data={"csrf_token": token}).status_code == 302
    assert _tokens(account)
    assert phone.get("/tickets").status_code == 200


def test_a_page_finding_the_last_session_timed_out_keeps_the_tokens(app):
    """A time-out is no sign-out: the tokens stay for the provider's re-checks of the person's chat decisions."""
    account = _provider_account()
    laptop = _signed_in(app, account, idle_minutes=31)
    assert laptop.get("/tickets").status_code == 302
    assert _tokens(account)


def test_a_tabs_own_polling_finding_the_last_session_timed_out_keeps_the_tokens(app):
    from app.auth.sessions import BACKGROUND_HEADER
    account = _provider_account()
    tab = _signed_in(app, account, idle_minutes=31)
    assert tab.get("/tickets", headers={"HX-Request": "true", BACKGROUND_HEADER: "1"}).status_code == 401
    assert _tokens(account)


def test_the_job_keeps_timed_out_records_while_a_cookie_may_name_them_and_keeps_the_tokens(app):
    """Nobody came back to the timed-out sessions: the job keeps their records while a browser may still present a
    cookie naming them (twice the absolute limit of 12 hours from sign-in), so a tab's Sign out finds them, then
    drops them; records of sessions ended with their account's epoch go at once. The tokens stay, so the provider
    goes on vouching for chat decisions."""
    idle, aged, ancient, moved = (_provider_account(name) for name in ("idle", "aged", "ancient", "moved"))
    timed_out = factories.browser_session(idle, idle_minutes=31)
    # Used a minute ago, opened past the absolute limit.
    past_limit = factories.browser_session(aged, idle_minutes=1)
    BrowserSession.update(created_at=utcnow() - timedelta(hours=12, minutes=1)).where(
        BrowserSession.id == past_limit.id).execute()
    no_cookie_left = factories.browser_session(ancient, idle_minutes=60 * 12 + 1)
    BrowserSession.update(created_at=utcnow() - timedelta(hours=24, minutes=1)).where(
        BrowserSession.id == no_cookie_left.id).execute()
    factories.browser_session(moved, idle_minutes=31)
    Account.update(session_epoch=Account.session_epoch + 1).where(Account.id == moved.id).execute()
    live = factories.browser_session(idle, idle_minutes=1)

    outcome = run_job(JOBS["forget_ended_sessions"])

    assert outcome.ran and outcome.error is None
    assert all(_tokens(account) for account in (idle, aged, ancient, moved))
    assert sorted(record.id for record in BrowserSession.select()) == [timed_out.id, past_limit.id, live.id]


def test_a_sign_out_leaves_the_tokens_a_sign_in_elsewhere_stores_meanwhile(app):
    """A sign-in opens its session, then stores its tokens: when both land after a sign-out elsewhere read the live
    sessions, the tokens, checked after that began, are the new session's and stay."""
    from app.auth import oidc_client
    account = _provider_account()
    Account.update(idp_checked_at=utcnow() + timedelta(seconds=5)).where(Account.id == account.id).execute()
    assert oidc_client.forget_unused_tokens(account.id) == 0
    assert _tokens(account)


def test_an_admin_ending_the_last_session_forgets_the_tokens(app, as_admin):
    account = _provider_account()
    _signed_in(app, account)
    _signed_in(app, account)
    first, second = BrowserSession.select().where(BrowserSession.account == account.id).order_by(BrowserSession.id)
    assert as_admin.post(f"/admin/users/{account.id}/sessions/{first.id}/end").status_code == 302
    assert _tokens(account)  # the other session still needs them
    assert as_admin.post(f"/admin/users/{account.id}/sessions/{second.id}/end").status_code == 302
    assert _tokens(account) is None


def test_an_admin_ending_every_session_forgets_the_tokens(app, as_admin):
    account = _provider_account()
    phone = _signed_in(app, account)
    assert as_admin.post(f"/admin/users/{account.id}/sessions/end", CONFIRMED).status_code == 302
    assert _tokens(account) is None
    assert phone.get("/tickets").status_code == 302


@pytest.fixture
def provider_ends_sessions(app):
    """The provider's discovery document, as read, names an end-session endpoint (RP-initiated logout)."""
    from app.auth import oidc_client
    oidc_client.client().server_metadata.update({"issuer": ISSUER, "end_session_endpoint": END_SESSION,
                                                 "_loaded_at": time.time()})


def _with_id_token(account):
    Account.update(idp_tokens='{"refresh_token": "r", "id_token": "id-token-of-bo"}').where(
        Account.id == account.id).execute()
    return account


def _provider_sign_out(answer):
    """The end-session request a Sign out's redirect makes at the provider, as (endpoint, its parameters)."""
    location = urlsplit(answer.headers["Location"])
    return f"{location.scheme}://{location.netloc}{location.path}", parse_qs(location.query)


@pytest.mark.parametrize("idle_minutes", [0, 31])
def test_sign_out_ends_the_providers_session_too_also_on_a_timed_out_tab(app, provider_ends_sessions, idle_minutes):
    """A tab left open past the idle time signs out at the provider as a live one does, with the ID token as the
    hint, before the tokens are forgotten."""
    account = _with_id_token(_provider_account())
    laptop = _signed_in(app, account)
    token = laptop.token()
    laptop.leave_idle(idle_minutes)

    answer = laptop.request("POST", "/sign-out", data={"csrf_token": token})

    assert answer.status_code == 302
    endpoint, parameters = _provider_sign_out(answer)
    assert endpoint == END_SESSION
    assert parameters["id_token_hint"] == ["id-token-of-bo"]
    assert parameters["post_logout_redirect_uri"] == ["https://jit.example.com/sign-in"]
    assert _tokens(account) is None
    from app.audit.models import AuditEntry
    [entry] = AuditEntry.select().where(AuditEntry.action == "sign_out")
    assert entry.actor == account.username
    assert entry.detail == ({"session": "timed out"} if idle_minutes else {})


def test_an_old_cookie_of_a_session_already_signed_out_of_is_not_sent_to_the_provider(app, provider_ends_sessions):
    account = _with_id_token(_provider_account())
    laptop, phone = _signed_in(app, account), _signed_in(app, account)
    old_cookie, token = _copy_of(app, laptop)
    assert _provider_sign_out(laptop.post("/sign-out"))[0] == END_SESSION

    answer = old_cookie.request("POST", "/sign-out", data={"csrf_token": token})

    assert answer.status_code == 302 and answer.headers["Location"].endswith("/sign-in")
    assert phone.get("/tickets").status_code == 200
