"""The PMC Service Host Name an admin enters: base URL, validation and warnings."""
import pytest

from app.epm.client import base_url_for_host, host_warnings, validate_host


@pytest.mark.parametrize("host, base_url", [
    ("acme-services.pm.beyondtrustcloud.com", "https://acme-services.pm.beyondtrustcloud.com"),
    ("  acme-services.pm.beyondtrustcloud.com/ ", "https://acme-services.pm.beyondtrustcloud.com"),
    ("https://acme-services.pm.beyondtrustcloud.com/", "https://acme-services.pm.beyondtrustcloud.com"),
    ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
    ("HTTPS://epm.example.org:8443/prefix/", "HTTPS://epm.example.org:8443/prefix"),
    ("localhost:8081", "https://localhost:8081"),
])
def test_base_url_for_host(host, base_url):
    assert base_url_for_host(host) == base_url


@pytest.mark.parametrize("host, message", [
    ("", "is empty"),
    (None, "is empty"),
    ("acme services.pm.beyondtrustcloud.com", "contains spaces"),
    ("acme-services.pm.beyondtrustcloud.com/oauth/connect/token", "without a path"),
    ("ftp://acme-services.pm.beyondtrustcloud.com", "scheme 'ftp'"),
    ("https://", "does not contain a valid host name"),
    ("https://user:pw@acme-services.pm.beyondtrustcloud.com", "does not contain a valid host name"),
    ("https://acme-services.pm.beyondtrustcloud.com?x=1", "query or fragment"),
    ("https://acme-services.pm.beyondtrustcloud.com:99999", "invalid port"),
    ("acme_services!.example", "not a valid host name"),
    ("-acme.example", "not a valid host name"),
])
def test_unusable_hosts_are_refused_with_a_reason(host, message):
    with pytest.raises(ValueError, match=message):
        validate_host(host)


def test_a_path_in_a_bare_host_suggests_the_host_alone():
    with pytest.raises(ValueError, match="try 'acme-services.pm.beyondtrustcloud.com'"):
        validate_host("acme-services.pm.beyondtrustcloud.com/management-api")


def test_a_host_without_the_services_suffix_is_warned_about_with_the_fix():
    [warning] = host_warnings("acme.pm.beyondtrustcloud.com")
    assert "PMC Service Host Name must be the tenant host with the -services suffix" in warning
    assert "e.g. acme-services.pm.beyondtrustcloud.com" in warning
    assert "did you mean 'acme-services.pm.beyondtrustcloud.com'" in warning


@pytest.mark.parametrize("host", ["acme-services.pm.beyondtrustcloud.com",
                                  "https://contoso-services.pm.beyondtrustcloud.com",
                                  "http://127.0.0.1:8081", "epm.example.org"])
def test_a_plausible_host_has_no_warnings(host):
    assert host_warnings(host) == []


def test_plain_http_to_another_machine_is_warned_about():
    [warning] = host_warnings("http://epm.example.org")
    assert "http://" in warning and "unencrypted" in warning


def test_host_warnings_never_raise():
    assert "contains spaces" in host_warnings("not a host")[0]
