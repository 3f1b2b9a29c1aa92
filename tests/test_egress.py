"""Outbound connections go only where app/egress.py allows, decided on the address the connection is made to.

Each test stays on loopback: a refused address is refused before any connection is attempted, and a guard
fails the test should a connection to anything but loopback be tried."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import egress
from tests.resolving import answers  # noqa: F401 - a fixture


class Server:
    """A loopback HTTP server recording the Host header of each request it is sent."""

    def __init__(self):
        self.hosts = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server.hosts.append(self.headers["Host"])
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.stop()


def test_the_connection_is_made_to_the_address_checked_and_the_name_is_kept_for_the_host_header(server, answers):
    answers("epm.test", "127.0.0.1", "169.254.169.254")
    with egress.checked_session() as session:
        assert session.get(f"http://epm.test:{server.port}/", timeout=10).status_code == 204
    assert server.hosts == [f"epm.test:{server.port}"]


def test_a_name_rebound_to_the_metadata_address_is_refused_on_the_next_connection(server, answers):
    answers("epm.test", "127.0.0.1", "169.254.169.254")
    with egress.checked_session() as session:
        session.get(f"http://epm.test:{server.port}/", timeout=10)
    with egress.checked_session() as session, pytest.raises(egress.EgressRefused, match="metadata"):
        session.get(f"http://epm.test:{server.port}/", timeout=10)
    assert len(server.hosts) == 1


@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.1", "fc00::5"])
def test_a_private_address_is_refused_unless_the_connection_is_internal(answers, address):
    answers("sdp.test", address)
    with egress.checked_session() as session, pytest.raises(egress.EgressRefused, match="internal"):
        session.get("https://sdp.test/api", timeout=10)
    assert egress.connect_address("sdp.test", internal=True) == address


def test_a_name_with_any_refused_answer_is_refused(monkeypatch):
    monkeypatch.setattr(egress, "resolve", lambda host: [egress._address("203.0.113.7"),
                                                         egress._address("169.254.169.254")])
    with pytest.raises(egress.EgressRefused, match="metadata"):
        egress.connect_address("two-answers.example")
