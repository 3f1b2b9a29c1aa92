"""Fixtures for the jobs tests: an app on PostgreSQL only, as several scheduler hosts share it; an EPM API
served by `responses` in the shapes of contract/epm.md §5."""
import functools
import json
import math
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from app import contract, create_app
from app.db import database
from app.logs import store as log_store
from app.migrations import upgrade
from tests import factories
from tests.conftest import empty_tables


@pytest.fixture
def pg_app(postgres_url):
    """An app on PostgreSQL only: what several scheduler hosts share."""
    # Tests run two schedulers in this one process: their jobs, heartbeats and the test itself share one pool,
    # where a scheduler process has it to itself (one connection per job running, one for its heartbeat).
    app = create_app({"database_url": postgres_url, "secret_key": "test-secret-key", "TESTING": True,
                      "max_connections": 16})
    with app.app_context():
        with database.connection_context():
            upgrade()
            empty_tables()
        yield app
        log_store.flush(5)
        database.close_all()


EPM_HOST = "acme-services.pm.beyondtrustcloud.com"
EPM = f"https://{EPM_HOST}"
TOKEN_URL = f"{EPM}{contract.EPM_TOKEN_PATH}"
LIST_URLS = {contract.KIND_APPLICATION: f"{EPM}{contract.EPM_APPLICATION_LIST_PATH}",
             contract.KIND_ADMIN: f"{EPM}{contract.EPM_ADMIN_LIST_PATH}"}


def application_record(request_id=None, status="Pending", **access_decision):
    """An AuthorizationRequest record as contract/epm.md §5 shows it, with its accessDecision replaced."""
    record = factories.epm_api_record("authorization_request", request_id or str(uuid.uuid4()))
    record["accessDecision"] = {"status": status, **access_decision}
    return record


def admin_record(request_id=None, status="Pending", **access_decision):
    """An AdminAccessRequest record as contract/epm.md §5 shows it, with its accessDecision replaced."""
    [record] = factories.epm_api_record("admin_access_request_v2_single", request_id or str(uuid.uuid4()))
    record["accessDecision"] = {"status": status, **access_decision}
    return record


class EpmApi:
    """EPM's management API as `responses` serves it: the request lists page by page as §5.10 shows them
    (or the pages a test sets), single reads, and what was asked."""

    def __init__(self, mock):
        self.mock = mock
        self.records = {kind: [] for kind in LIST_URLS}
        self.pages = {}  # kind -> [page documents], replacing the records' own paging
        self.asked = []  # (kind, page number, page size)
        for kind, url in LIST_URLS.items():
            mock.add_callback("GET", url, callback=functools.partial(self._page, kind))

    def add(self, kind, *records):
        self.records[kind].extend(records)
        return records[0] if len(records) == 1 else records

    def _page(self, kind, request):
        query = parse_qs(urlsplit(request.url).query)
        size, number = int(query["Pagination.PageSize"][0]), int(query["Pagination.PageNumber"][0])
        self.asked.append((kind, number, size))
        if kind in self.pages:
            pages = self.pages[kind]
            document = pages[number - 1] if number <= len(pages) else {"data": []}
        else:
            records = self.records[kind]
            document = {"pageNumber": number, "pageSize": size, "totalRecordCount": len(records),
                        "pageCount": math.ceil(len(records) / size),
                        "data": records[(number - 1) * size:number * size]}
        return 200, {"Content-Type": "application/json"}, json.dumps(document)


@pytest.fixture
def epm_api(app, monkeypatch):
    """The Default configuration pointed at an EPM tenant whose API `responses` serves (EpmApi)."""
    from app.configuration import update_configuration
    from app.epm import tokens

    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    tokens.clear_token_cache()
    update_configuration({"pmc_host": EPM_HOST, "client_id": "broker-client", "client_secret": "s3cr3t-value"})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "token-1", "token_type": "Bearer", "expires_in": 3600})
        yield EpmApi(mock)
    tokens.clear_token_cache()
