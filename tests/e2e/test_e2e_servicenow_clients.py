"""ServiceNow's own Python client (pysnc) and pysnow read the broker's tickets over TLS from gunicorn, as scripts and
integrations do: OR conditions, contains, starts_with, date comparisons, between, ordering, paging through every
record, dot-walked fields, display values, and a query long enough that pysnc sends it through the Batch API."""
import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pysnc import ServiceNowClient

from app import contract
from app.models import ApplicationAccessTicket, Task
from app.servicenow_api.fields import reference_sys_id
from tests import factories
from tests.live import ROOT, LiveServer

pytestmark = pytest.mark.e2e

DESCRIPTIONS = ("VPN access", "Printer driver", "Payroll app", "vpn client update")
REQUESTERS = ("CORP\\mrivera", "CORP\\jdoe", "CORP\\asmith")
PYSNOW_PYTHON = ROOT / ".venv-pysnow" / "bin" / "python"
TICKETS = [{"number": f"INC{10000 + n:07d}", "short_description": DESCRIPTIONS[n % 4], "requester": REQUESTERS[n % 3],
            "state": 1 + n % 3, "opened_at": dt.datetime(2026, 1, n, 8, 0, 0, 250000)} for n in range(1, 25)]


def numbers_where(predicate):
    return sorted(ticket["number"] for ticket in TICKETS if predicate(ticket))


def self_signed_certificate(folder):
    """A certificate for 127.0.0.1 signed by its own key: what gunicorn serves and what the clients trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "broker.crt", folder / "broker.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def broker(app, database_url, tmp_path):
    """gunicorn over TLS on loopback serving TICKETS, and a `reader` account for the clients."""
    factories.account("pam360", contract.ROLE_READER)
    for index, ticket in enumerate(TICKETS):
        task = Task.create(sys_class_name="incident", kind=contract.KIND_APPLICATION, request_id=f"r{index}",
                           subject="app", updated_at=ticket["opened_at"], **ticket)
        ApplicationAccessTicket.create(task=task, request_id=f"r{index}")
    tls = self_signed_certificate(tmp_path)
    with LiveServer(database_url, workers=1, tls=tls) as server:
        yield server, str(tls[0])


@pytest.fixture
def pysnc_client(broker, monkeypatch):
    server, ca_file = broker
    # pysnc sends through requests' merge_environment_settings, where a CA bundle named in the
    # environment wins over the session's `verify` (requests issue 3829): leave the choice to verify=.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return ServiceNowClient(server.url, ("pam360", factories.PASSWORD), verify=ca_file)


def read_numbers(record):
    found = []
    while record.next():
        found.append(record.get_value("number"))
    return found


def test_pysnc_or_conditions_contains_starts_with_and_dates(pysnc_client):
    either = pysnc_client.GlideRecord("incident")
    either.add_query("short_description", "LIKE", "vpn").add_or_condition("short_description", "STARTSWITH", "PRINTER")
    either.order_by("number")
    either.query()
    later = pysnc_client.GlideRecord("incident")
    later.add_query("opened_at", ">=", "2026-01-20 08:00:00")
    later.add_query("opened_at", "<", "2026-01-23 08:00:00")
    later.order_by("number")
    later.query()
    exact = pysnc_client.GlideRecord("incident")
    exact.add_query("opened_at", "2026-01-07 08:00:00")  # stored as 08:00:00.25
    exact.query()

    assert read_numbers(either) == numbers_where(
        lambda t: "vpn" in t["short_description"].lower() or t["short_description"].lower().startswith("printer"))
    assert read_numbers(later) == ["INC0010020", "INC0010021", "INC0010022"]
    assert read_numbers(exact) == ["INC0010007"]


def test_pysnc_pages_through_every_record_in_order(pysnc_client):
    every = pysnc_client.GlideRecord("incident", batch_size=7)
    every.order_by_desc("number")
    every.query()

    assert read_numbers(every) == sorted((t["number"] for t in TICKETS), reverse=True)
    assert every.get_row_count() == len(TICKETS)


def test_pysnc_reads_dot_walked_fields_and_display_values(pysnc_client):
    record = pysnc_client.GlideRecord("incident")
    record.fields = ["number", "state", "opened_by", "opened_by.user_name"]
    record.add_query("number", "INC0010002")
    record.query()
    assert record.next()

    assert record.get_value("opened_by") == reference_sys_id("sys_user", "CORP\\asmith")
    assert record.get_display_value("opened_by") == "CORP\\asmith"
    assert record.get_value("opened_by.user_name") == "CORP\\asmith"
    assert (record.get_value("state"), record.get_display_value("state")) == ("3", "On Hold")


def test_pysnc_sends_a_long_query_through_the_batch_api(pysnc_client):
    wanted = ["INC0010003", "INC0010011", "INC0010019"]
    numbers = [f"INC{n:07d}" for n in range(20000, 21000)] + wanted
    record = pysnc_client.GlideRecord("incident")
    record.add_encoded_query("^OR".join(f"number={number}" for number in numbers))
    record.order_by("number")
    assert len(record.get_encoded_query()) > 10000  # pysnc's threshold for the Batch API

    record.query()

    assert read_numbers(record) == wanted


def test_pysnow_query_builder_against_the_broker(broker):
    server, ca_file = broker
    if not PYSNOW_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PYSNOW_PYTHON.parent.parent)], check=True)
        subprocess.run([str(PYSNOW_PYTHON), "-m", "pip", "install", "--quiet", "pysnow"], check=True)
    # As for pysnc: a CA bundle named in the environment would win over the session's `verify`.
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    run = subprocess.run([str(PYSNOW_PYTHON), str(ROOT / "tests" / "e2e" / "pysnow_queries.py"),
                          server.url.removeprefix("https://"), ca_file, "pam360", factories.PASSWORD],
                         capture_output=True, text=True, timeout=120, env=environment)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)

    assert found["contains"] == numbers_where(lambda t: "vpn" in t["short_description"].lower())
    assert found["starts_with_or"] == numbers_where(lambda t: t["short_description"] in ("Printer driver",
                                                                                         "Payroll app"))
    assert found["greater_than"] == numbers_where(lambda t: t["opened_at"].replace(microsecond=0)
                                                  > dt.datetime(2026, 1, 20, 8))
    assert found["between"] == ["INC0010003", "INC0010004", "INC0010005"]
    assert found["equals_list_nq"] == ["INC0010002", "INC0010004", "INC0010024"]
    assert found["ordered_desc_paged"] == sorted((t["number"] for t in TICKETS), reverse=True)
    asmith = reference_sys_id("sys_user", "CORP\\asmith")
    assert found["walked"] == {"number": "INC0010002", "opened_by.user_name": "CORP\\asmith", "opened_by": {
        "link": f"{server.url}/api/now/table/sys_user/{asmith}", "value": asmith}}
    assert found["shown"]["state"] == "On Hold"
    assert found["shown"]["opened_by"]["display_value"] == "CORP\\asmith"


def test_gunicorn_takes_a_long_request_line_and_the_broker_caps_it_in_json(broker):
    server, ca_file = broker
    table = f"{server.url}/api/now/table/incident"
    credentials = ("pam360", factories.PASSWORD)
    long_query = "^OR".join(f"number=INC{n:07d}" for n in range(20000, 21000)) + "^ORnumber=INC0010001"

    served = requests.get(table, params={"sysparm_query": long_query, "sysparm_fields": "number"},
                          auth=credentials, verify=ca_file, timeout=60)
    refused = requests.get(table, params={"sysparm_query": "number=" + "X" * 40000}, auth=credentials,
                           verify=ca_file, timeout=60)

    assert len(served.request.url) > 8190  # past what gunicorn's own limit can be raised to
    assert served.status_code == 200 and served.json() == {"result": [{"number": "INC0010001"}]}
    assert refused.status_code == 414
    assert refused.json()["error"]["message"] == "Request line too long"
    assert refused.json()["status"] == "failure"
