"""Which addresses the broker may send a request (and a secret) to, checked on the resolved address.

Link-local and cloud metadata addresses are always refused: a request there can read the host's cloud
credentials. Private-range addresses are refused unless the connection is marked internal (an on-premises
server). Loopback stays allowed (the bundled fake EPM, tests). The check runs when a URL is saved and again
right before each outbound call, on what the name resolves to then, so a name re-pointed after saving
(DNS rebinding) is refused too.
"""
import ipaddress
import socket
from urllib.parse import urlsplit

METADATA_NAMES = {"metadata.google.internal", "metadata.google.internal.", "metadata", "instance-data"}
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
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
    name = (host or "").strip().strip("[]").lower()
    if not name:
        return
    if name in METADATA_NAMES:
        raise EgressRefused(f"{name} is a cloud metadata host; the broker never connects there.")
    for address in resolve(name):
        reason = refusal(name, address, internal)
        if reason:
            raise EgressRefused(reason)


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
