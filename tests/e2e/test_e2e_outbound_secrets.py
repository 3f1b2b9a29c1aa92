"""The client secret goes only to the host it was entered for, tried as an attacker would against a running broker.

An admin session (stolen, or a careless admin) that points the EPM host or token path elsewhere without typing
the secret again is refused, and a listener at the new address never sees the secret; cloud metadata addresses
are refused; whatever a foreign host answers is kept in the outbound log only as a short excerpt.
"""
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from app.configuration import FIELDS, SECRET_AGAIN
from app.epm.fake import FakeEpm
from app.epm.tokens import clear_token_cache
from app.audit.models import AuditEntry
from app.logs.models import OutboundCall
from app.logs.outbound import RESPONSE_EXCERPT
from app.models import Configuration
from tests import factories
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
CHECKBOXES = {"auto_close", "smtp_starttls", "debug_logging", "allow_self_approval", "epm_internal", "smtp_internal"}
BIG_ANSWER = '{"error": "invalid_client", "detail": "' + "internal-data " * 800 + '"}'


class Listener:
    """A loopback HTTP server that records every request it receives and answers 400 with a 10 KB body."""

    def __init__(self):
        self.received = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.received.append(f"{self.path}\n{self.headers}\n{body.decode('utf-8', 'replace')}")
                answer = BIG_ANSWER.encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def broker(app, database_url, api_account, admin):
    """A running broker configured for a fake EPM, a recording listener elsewhere, and a signed-in admin browser."""
    with LiveServer(database_url, workers=1) as server:
        fake = FakeEpm(broker_url=server.url).start()
        listener = Listener()
        Configuration.default()
        Configuration.update(pmc_host=fake.url, client_id=fake.client_id, client_secret=fake.client_secret).execute()
        clear_token_cache()
        browser = requests.Session()
        page = browser.get(f"{server.url}/sign-in", timeout=30).text
        signed_in = browser.post(f"{server.url}/sign-in", timeout=30, allow_redirects=False,
                                 data={"csrf_token": _TOKEN.search(page).group(1), "username": admin.username,
                                       "password": factories.PASSWORD})
        assert signed_in.status_code == 302
        try:
            yield server, fake, listener, browser
        finally:
            listener.stop()
            fake.stop()
            clear_token_cache()


def _save(server, browser, unchecked=(), **changes):
    """Post the configuration form as the page shows it (secrets blank: kept), with `changes` and the boxes
    named in `unchecked` cleared."""
    record = Configuration.default()
    form = {field.name: str(getattr(record, field.name)) for field in FIELDS
            if not field.secret and field.name not in CHECKBOXES}
    form.update({name: "on" for name in CHECKBOXES if getattr(record, name) and name not in unchecked})
    page = browser.get(f"{server.url}/admin/configuration", timeout=30).text
    version = re.search(r'name="configuration_version" value="(\d+)"', page).group(1)
    form.update(csrf_token=_TOKEN.search(page).group(1), configuration_version=version, **changes)
    return browser.post(f"{server.url}/admin/configuration", data=form, timeout=30, allow_redirects=False)


def _test_connection(server, browser):
    page = browser.get(f"{server.url}/admin/configuration", timeout=30).text
    return browser.post(f"{server.url}/admin/configuration/test", timeout=30, allow_redirects=False,
                        data={"csrf_token": _TOKEN.search(page).group(1)})


def test_moving_the_host_without_typing_the_secret_again_is_refused_and_the_new_host_sees_nothing(broker):
    server, fake, listener, browser = broker
    answer = _save(server, browser, pmc_host=listener.url)
    assert answer.status_code == 400, answer.status_code
    assert SECRET_AGAIN["client_secret"] in answer.text
    assert fake.client_secret not in answer.text
    assert Configuration.default().pmc_host == fake.url
    _test_connection(server, browser)
    assert listener.received == []


def test_changing_the_token_path_without_typing_the_secret_again_is_refused(broker):
    server, _fake, _listener, browser = broker
    answer = _save(server, browser, token_path="/collect")
    assert answer.status_code == 400, answer.status_code
    assert SECRET_AGAIN["client_secret"] in answer.text
    assert Configuration.default().token_path != "/collect"


def test_moving_the_host_with_the_secret_typed_again_is_saved(broker):
    server, fake, listener, browser = broker
    answer = _save(server, browser, pmc_host=listener.url, client_secret="a-new-secret")
    assert answer.status_code == 302, answer.text
    assert Configuration.default().pmc_host == listener.url


@pytest.mark.parametrize("host", ["169.254.169.254", "http://169.254.169.254", "metadata.google.internal",
                                  "[fd00:ec2::254]", "169.254.10.1", "10.1.2.3"])
def test_a_metadata_link_local_or_private_epm_host_is_refused_at_save(broker, host):
    server, fake, _listener, browser = broker
    answer = _save(server, browser, pmc_host=host, client_secret="typed-again")
    assert answer.status_code == 400, answer.status_code
    assert Configuration.default().pmc_host == fake.url


def test_a_foreign_answer_of_10_kb_is_kept_as_a_short_excerpt(broker):
    server, fake, listener, browser = broker
    Configuration.update(pmc_host=listener.url).execute()
    clear_token_cache()
    _test_connection(server, browser)
    assert listener.received
    [call] = OutboundCall.select().where(OutboundCall.url.startswith(listener.url))
    assert call.status == 400
    assert call.duration_ms >= 0
    assert len(BIG_ANSWER) > 10_000
    assert call.response_body.startswith(BIG_ANSWER[:RESPONSE_EXCERPT])
    assert call.response_body.count("internal-data") < 30
    assert len(call.response_body) < RESPONSE_EXCERPT + 50


def test_moving_the_mail_server_without_typing_the_smtp_password_again_is_refused(broker):
    server, _fake, listener, browser = broker
    Configuration.update(smtp_host="127.0.0.1", smtp_port=2525, smtp_password="mail-secret").execute()
    moved_port = listener.url.rsplit(":", 1)[1]
    answer = _save(server, browser, smtp_port=moved_port)
    assert answer.status_code == 400, answer.status_code
    assert SECRET_AGAIN["smtp_password"] in answer.text
    assert "mail-secret" not in answer.text
    assert Configuration.default().smtp_port == 2525
    answer = _save(server, browser, smtp_port=moved_port, smtp_password="mail-secret-again")
    assert answer.status_code == 302, answer.text


@pytest.mark.parametrize("field, mark, host", [("pmc_host", "epm_internal", "10.1.2.3"),
                                               ("smtp_host", "smtp_internal", "192.168.7.25")])
def test_a_private_address_is_saved_only_with_its_internal_mark_which_is_audited(broker, field, mark, host):
    server, _fake, _listener, browser = broker
    secret = {"pmc_host": {"client_secret": "typed-again"}, "smtp_host": {}}[field]
    refused = _save(server, browser, **{field: host}, **secret)
    assert refused.status_code == 400, refused.status_code
    assert "mark the connection as internal" in refused.text
    saved = _save(server, browser, **{field: host, mark: "on"}, **secret)
    assert saved.status_code == 302, saved.text
    assert getattr(Configuration.default(), field) == host
    entry = (AuditEntry.select().where(AuditEntry.action == "configuration_change")
             .order_by(AuditEntry.id.desc()).get())
    assert entry.detail[mark] == {"old": False, "new": True}
    unmarked = _save(server, browser, unchecked=(mark,))
    assert unmarked.status_code == 400, "the mark was taken away while the address is private"
    assert getattr(Configuration.default(), mark) is True
