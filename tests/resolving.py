"""A rebinding DNS server for tests of where outbound connections go (app/egress.py), kept on loopback."""
import socket

import pytest
import urllib3.util.connection

from app import egress

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def answers(monkeypatch):
    """Names ending in .test resolve to the addresses given, in turn (a rebinding DNS server); connections to
    anything but loopback fail the test instead of leaving the machine."""
    queue = {}

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            address = queue[host].pop(0) if len(queue[host]) > 1 else queue[host][0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, 0))]
        return REAL_GETADDRINFO(host, *args, **kwargs)

    real_connect = urllib3.util.connection.create_connection
    real_socket_connect = socket.create_connection

    def loopback_only(connect):
        def guarded(address, *args, **kwargs):
            assert egress._address(address[0]).is_loopback, f"tried to connect to {address[0]}"
            return connect(address, *args, **kwargs)
        return guarded

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", loopback_only(real_connect))
    monkeypatch.setattr("urllib3.connection.connection.create_connection", loopback_only(real_connect))
    monkeypatch.setattr(socket, "create_connection", loopback_only(real_socket_connect))

    def point(name, *addresses):
        queue[name] = list(addresses)
    return point
