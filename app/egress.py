"""Which addresses the broker may send a request (and a secret) to, checked on the resolved address.

Link-local and cloud metadata addresses are always refused: a request there can read the host's cloud
credentials. Private-range addresses are refused unless the connection is marked internal (an on-premises
server). Loopback stays allowed (the bundled fake EPM, tests). The check runs when a URL is saved, and again
on the socket of every outbound HTTP connection (`checked_session`, `mount`) and SMTP connection
(`CheckedSMTP`): the name is resolved once, every answer checked, and the connection made to the checked
address, so a name re-pointed after saving (DNS rebinding) cannot lead the broker where the check refuses.

How long a refusing answer asks the broker to wait (`retry_after`) is read here too, one way for every upstream
it calls: EPM, Slack, Teams and the chat webhook.
"""
import ipaddress
import smtplib
import socket
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

METADATA_NAMES = {"metadata.google.internal", "metadata.google.internal.", "metadata", "instance-data"}
# AWS, GCP and Azure (169.254.169.254, fd00:ec2::254), Azure's host agent (168.63.129.16), Alibaba Cloud
# (100.100.100.200).
METADATA_ADDRESSES = {ipaddress.ip_address(text) for text in
                      ("169.254.169.254", "fd00:ec2::254", "168.63.129.16", "100.100.100.200")}
# "This network" (0.0.0.0/8) reaches the host itself on many systems.
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
PRIVATE = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("172.16.0.0/12"),
           ipaddress.ip_network("192.168.0.0/16"), ipaddress.ip_network("fc00::/7"))


class EgressRefused(ValueError):
    """The broker will not connect to this host; the message says why and what to do."""


def _address(text):
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def refusal(host, address, internal=False):
    """Why `address` (what `host` resolves to) may not be reached, or None when it may."""
    if address in METADATA_ADDRESSES:
        return f"{host} is a cloud metadata address ({address}); the broker never connects there."
    if address in THIS_NETWORK or address.is_unspecified:
        return f"{host} is an unspecified address ({address}); the broker never connects there."
    if any(address in network for network in LINK_LOCAL):
        return f"{host} is a link-local address ({address}); the broker never connects there."
    if address.is_loopback:
        return None
    if any(address in network for network in PRIVATE) and not internal:
        return (f"{host} is a private-network address ({address}); mark the connection as internal "
                "to allow it.")
    return None


def resolve(host):
    """The addresses `host` resolves to now; [] when it does not resolve (the connection itself then fails)."""
    literal = _address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = [_address(info[4][0]) for info in infos]
    return list(dict.fromkeys(address for address in found if address is not None))


def check_host(host, internal=False):
    """Raise EgressRefused when `host` (a name or address) is, or resolves to, a refused address."""
    if (host or "").strip():
        connect_address(host, internal)


def check_url(url, internal=False):
    """check_host for the host of an http(s) URL (or a bare host name)."""
    text = (url or "").strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return
    check_host(host or "", internal)


def connect_address(host, internal=False):
    """The address to connect to for `host`: what it resolves to now, each answer checked (EgressRefused when
    one is refused). Connecting to this address, not to the name again, leaves DNS no second answer to give.
    A name that does not resolve comes back as it is, for the connection to fail as it would."""
    name = (host or "").strip().strip("[]").rstrip(".").lower()
    if name in METADATA_NAMES:
        raise EgressRefused(f"{name} is a cloud metadata host; the broker never connects there.")
    addresses = resolve(name)
    for address in addresses:
        reason = refusal(name, address, internal)
        if reason:
            raise EgressRefused(reason)
    return str(addresses[0]) if addresses else host


@lru_cache(maxsize=None)
def _pool_classes(internal):
    """HTTP and HTTPS connection pools whose connections connect only to a checked address."""

    def checked(connection_class):
        class Checked(connection_class):
            def _new_conn(self):
                # urllib3 connects to _dns_host; the name itself (self.host, from the same attribute) stays
                # what TLS verifies and the Host header carries, so it is swapped only for the connect.
                name = self._dns_host
                self._dns_host = connect_address(name, internal)
                try:
                    return super()._new_conn()
                finally:
                    self._dns_host = name
        return Checked

    class CheckedHTTPPool(HTTPConnectionPool):
        ConnectionCls = checked(HTTPConnection)

    class CheckedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = checked(HTTPSConnection)

    return {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}


class CheckedAdapter(requests.adapters.HTTPAdapter):
    """A requests transport that only connects to an address `refusal` allows, checked as it connects.

    Through an HTTP proxy the socket leads to the proxy, which resolves the target itself: there the target's
    name is checked on what it resolves to just before the request instead."""

    def __init__(self, internal=False, **kwargs):
        self.internal = internal
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.internal)

    def send(self, request, *args, proxies=None, **kwargs):
        if select_proxy(request.url, proxies):
            check_url(request.url, self.internal)
        return super().send(request, *args, proxies=proxies, **kwargs)


def mount(session, internal=False):
    """Route every http(s) request of `session` through CheckedAdapter; returns the session."""
    adapter = CheckedAdapter(internal)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def checked_session(internal=False):
    """A requests.Session that only connects where `refusal` allows (use it as a context manager)."""
    return mount(requests.Session(), internal)


class CheckedSMTP(smtplib.SMTP):
    """smtplib.SMTP that only connects to an address `refusal` allows (the server name stays for TLS)."""

    def __init__(self, *args, internal=False, **kwargs):
        self.internal = internal
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        return super()._get_socket(connect_address(host, self.internal), port, timeout)


class CheckedSMTPSSL(smtplib.SMTP_SSL, CheckedSMTP):
    """CheckedSMTP over implicit TLS (port 465): SMTP_SSL wraps the socket CheckedSMTP connected."""

    def __init__(self, *args, internal=False, **kwargs):
        self.internal = internal
        super().__init__(*args, **kwargs)


# --- What an answer asks -------------------------------------------------------------------------

# What a Retry-After of more digits than any wait reads as.
RETRY_AFTER_BEYOND = 10 ** 12


def retry_after_seconds(value, now=None):
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None if absent/invalid."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        # Beyond a dozen digits (over 30,000 years) it is only "much later": each queue caps its wait anyway.
        return int(text) if len(text) <= 12 else RETRY_AFTER_BEYOND
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0, int((when - (now or datetime.now(timezone.utc))).total_seconds()))


def retry_after(headers):
    """The seconds a failing answer's Retry-After header asks for (EPM's, Slack's, Teams', a chat webhook's),
    or None: absent or unreadable."""
    value = next((value for name, value in (headers or {}).items() if name.lower() == "retry-after"), None)
    return retry_after_seconds(value)
