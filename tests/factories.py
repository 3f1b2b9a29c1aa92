"""Test data: accounts with a known password (hashed once per run), and EPM deliveries."""
import copy
import json
import secrets
import uuid
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from app import contract
from app.auth.accounts import hash_password
from app.auth.models import BrowserSession
from app.models import Account, utcnow

PASSWORD = "correct-horse-battery"
# Copies of ../shared/fixtures, so a clean clone of the project carries its own.
_FIXTURES = Path(__file__).resolve().parent / "fixtures"


@lru_cache(maxsize=1)
def password_hash():
    return hash_password(PASSWORD)


def account(username, role, active=True):
    return Account.create(username=username, role=role, password_hash=password_hash(), active=active)


def provider_account(username, issuer, subject, checked_minutes_ago=0):
    """An account the identity provider at `issuer` signs in, its tokens kept, last re-checked
    `checked_minutes_ago`; it has no session yet."""
    created = account(username, contract.ROLE_USER)
    Account.update(idp_issuer=issuer, idp_subject=subject, idp_tokens='{"refresh_token": "r"}',
                   idp_checked_at=utcnow() - timedelta(minutes=checked_minutes_ago)).where(
        Account.id == created.id).execute()
    return Account.get_by_id(created.id)


def browser_session(account, idle_minutes=0):
    """The server's record of a session of `account` (no cookie names it), last used `idle_minutes` ago."""
    return BrowserSession.create(key_digest=secrets.token_hex(32), account=account.id, epoch=account.session_epoch,
                                 last_seen_at=utcnow() - timedelta(minutes=idle_minutes))


def _fixture(name):
    return json.loads((_FIXTURES / f"{name}.json").read_text())


def application_request(request_id=None, **request_info):
    body = copy.deepcopy(_fixture("urm_ticket_created"))
    body["RequestId"] = request_id or str(uuid.uuid4())
    body["requestInfo"].update(request_info)
    return body


def application_decision(request_id, **request_info):
    body = copy.deepcopy(_fixture("urm_decision_update"))
    body["RequestId"] = request_id
    body["requestInfo"].update(request_info)
    return body


def admin_request(request_id=None, **fields):
    body = copy.deepcopy(_fixture("admin_ticket_created"))
    body["RequestId"] = request_id or str(uuid.uuid4())
    body.update(fields)
    return body


def admin_decision(request_id, **fields):
    body = copy.deepcopy(_fixture("admin_ticket_updated"))
    body["RequestId"] = request_id
    body.update(fields)
    return body


def admin_revocation(request_id, **fields):
    """EPM's update for an approved Admin Access request later set to Denied (contract/epm.md 5.3)."""
    body = copy.deepcopy(_fixture("admin_ticket_revoked"))
    body["RequestId"] = request_id
    body.update(fields)
    return body


def epm_api_record(name, request_id=None, **request_info):
    """A copy of an EPM API answer from tests/fixtures (`epm_api_<name>.json`, contract/epm.md §5 "Example
    records"); `request_id` replaces the request id in every record, `request_info` updates their requestInfo."""
    document = copy.deepcopy(_fixture(f"epm_api_{name}"))
    records = document["data"] if isinstance(document, dict) and "data" in document else (
        document if isinstance(document, list) else [document])
    for record in records:
        if request_id is not None:
            record["requestInfo"]["requestId"] = request_id
            if "id" in record:
                record["id"] = request_id
        record["requestInfo"].update(request_info)
    return document
