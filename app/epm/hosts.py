"""The "PMC Service Host Name" an administrator enters, turned into the API's base URL (contract/epm.md §2).

Leaving out the `-services` suffix is the most common misconfiguration, so it gets its own warning."""
import ipaddress
import re
from urllib.parse import urlsplit

from app import contract

EXAMPLE_HOST = f"acme{contract.EPM_SERVICES_SUFFIX}.pm.beyondtrustcloud.com"
CLOUD_DOMAIN = ".beyondtrustcloud.com"
HOST_ADVICE = (f"The PMC Service Host Name must be the tenant host with the {contract.EPM_SERVICES_SUFFIX} "
               f"suffix, e.g. {EXAMPLE_HOST}")

_SCHEMES = ("http", "https")
_BARE_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::\d{1,5})?$")


def validate_host(host):
    """The host as entered, stripped (a host name with optional :port, or an http(s) URL without query,
    fragment or credentials); ValueError with a message an admin can act on."""
    text = (host or "").strip()
    if not text:
        raise ValueError(f"The PMC Service Host Name is empty. {HOST_ADVICE}.")
    if any(ch.isspace() for ch in text):
        raise ValueError(f"The PMC Service Host Name {text!r} contains spaces. {HOST_ADVICE}.")
    if "://" in text:
        return _validate_url(text)
    bare = text.rstrip("/")
    if "/" in bare or "?" in bare or "#" in bare:
        suggestion = re.split(r"[/?#]", bare, maxsplit=1)[0]
        raise ValueError(f"The PMC Service Host Name {text!r} must be a host name only, without a path "
                         f"(try {suggestion!r}), or a full https:// URL.")
    if "@" in bare or not _BARE_HOST.match(bare):
        raise ValueError(f"The PMC Service Host Name {text!r} is not a valid host name. {HOST_ADVICE}.")
    return bare


def _validate_url(text):
    parts = urlsplit(text)
    if parts.scheme.lower() not in _SCHEMES:
        raise ValueError(f"The PMC Service Host Name {text!r} has the scheme {parts.scheme!r}: enter a host name "
                         f"such as {EXAMPLE_HOST}, or a full https:// URL.")
    if not parts.hostname or "@" in parts.netloc or not _BARE_HOST.match(parts.netloc):
        raise ValueError(f"The PMC Service Host Name {text!r} does not contain a valid host name. {HOST_ADVICE}.")
    if parts.query or parts.fragment:
        raise ValueError(f"The PMC Service Host Name {text!r} must not carry a query or fragment.")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError(f"The PMC Service Host Name {text!r} has an invalid port.") from None
    return text.rstrip("/")


def base_url_for_host(host):
    """The API base URL for a configured host (`https://<host>`, or the URL as given), without a trailing slash."""
    text = validate_host(host)
    if "://" in text:
        return text
    return f"https://{text}"


def host_name(host_or_url):
    """The host part of a bare host or URL, lower case, for messages and checks."""
    text = (host_or_url or "").strip()
    if "://" not in text:
        text = f"https://{text}"
    return (urlsplit(text).hostname or "").lower()


def is_loopback(name):
    """True for localhost and loopback addresses: the only hosts reached over plain http://."""
    try:
        return name == "localhost" or ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def host_warnings(host):
    """Warnings about a host that is valid but probably wrong ([] when it looks right); never raises."""
    try:
        text = validate_host(host)
    except ValueError as error:
        return [str(error)]
    name = host_name(text)
    warnings = []
    first_label = name.split(".", 1)[0]
    if name.endswith(CLOUD_DOMAIN) and not first_label.endswith(contract.EPM_SERVICES_SUFFIX):
        fixed = f"{first_label}{contract.EPM_SERVICES_SUFFIX}{name[len(first_label):]}"
        warnings.append(f"{HOST_ADVICE} ({name!r} has no {contract.EPM_SERVICES_SUFFIX} suffix; "
                        f"did you mean {fixed!r}?).")
    if text.lower().startswith("http://") and not is_loopback(name):
        warnings.append(f"{text!r} uses http://, which the broker only allows for a test server on this "
                        "machine: the client secret would cross the network unencrypted. Use https:// or a "
                        "bare host name.")
    return warnings
