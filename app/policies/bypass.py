"""Failsafe bypass codes: issued by an admin, quoted in a JIT reason, counted as a valid ticket.

Single-use, time-limited or both; only a code's SHA-256 is stored, so it is shown once, and every use is audited."""
import hashlib
import re
import secrets
from datetime import timedelta

from app.audit import service as audit
from app.db import write_transaction
from app.errors import BadRequest, Conflict, NotFound
from app.models import utcnow
from app.policies.models import BypassCode

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_PATTERN = re.compile(r"(?<![A-Za-z0-9])BYPASS-([A-Za-z0-9]{4})-([A-Za-z0-9]{4})-([A-Za-z0-9]{4})(?![A-Za-z0-9])",
                          re.IGNORECASE)
MAX_VALID_HOURS = 24 * 30


def code_hash(code):
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def generate_code():
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(3)]
    return "BYPASS-" + "-".join(groups)


def issue_code(actor, label="", single_use=True, valid_hours=None):
    """Create a code; returns (record, code). A code needs single use, a lifetime, or both."""
    if valid_hours in ("", None):
        valid_hours = None
    else:
        try:
            valid_hours = float(valid_hours)
        except (TypeError, ValueError):
            raise BadRequest("Enter the hours a bypass code stays valid as a number") from None
        if not 0 < valid_hours <= MAX_VALID_HOURS:
            raise BadRequest(f"A bypass code is valid for more than 0 and at most {MAX_VALID_HOURS} hours")
    if not single_use and valid_hours is None:
        raise BadRequest("A bypass code must be single-use, time-limited, or both")
    label = (label or "").strip()[:255]
    code = generate_code()
    with write_transaction():
        record = BypassCode.create(
            code_hash=code_hash(code), hint=code[-4:], label=label, single_use=bool(single_use),
            expires_at=utcnow() + timedelta(hours=valid_hours) if valid_hours else None,
            issued_by=getattr(actor, "username", actor),
        )
        audit.record("bypass_code_issue", actor, "bypass_code", record.sys_id, {
            "hint": record.hint, "label": label, "single_use": record.single_use,
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        })
    return record, code


def find_code(sys_id):
    record = BypassCode.get_or_none(BypassCode.sys_id == sys_id)
    if record is None:
        raise NotFound(f"No bypass code {sys_id}")
    return record


def revoke_code(record, actor):
    """Revoke a code (Conflict when it already is, so the audit log records one revocation)."""
    with write_transaction():
        revoked = BypassCode.update(revoked_at=utcnow(), revoked_by=getattr(actor, "username", actor)).where(
            BypassCode.id == record.id, BypassCode.revoked_at.is_null()).execute()
        if not revoked:
            raise Conflict(f"Bypass code …{record.hint} is already revoked")
        audit.record("bypass_code_revoke", actor, "bypass_code", record.sys_id, {"hint": record.hint})
    return BypassCode.get_by_id(record.id)


def status(record, now=None):
    """active, used, expired or revoked."""
    now = now or utcnow()
    if record.revoked_at is not None:
        return "revoked"
    if record.single_use and record.used_count > 0:
        return "used"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return "active"


def codes_in(text):
    """Every well-formed code quoted in `text`, normalised to upper case."""
    return ["BYPASS-" + "-".join(match.groups()).upper() for match in CODE_PATTERN.finditer(text or "")]


def valid_code_in(text):
    """The first code in `text` that is active now, or None."""
    for code in codes_in(text):
        record = BypassCode.get_or_none(BypassCode.code_hash == code_hash(code))
        if record is not None and status(record) == "active":
            return record
    return None


def _usable_condition(now):
    condition = BypassCode.revoked_at.is_null() & (BypassCode.expires_at.is_null() | (BypassCode.expires_at > now))
    return condition & ((BypassCode.single_use == False) | (BypassCode.used_count == 0))  # noqa: E712


def use_code(record, actor, task, rule):
    """Count one use of `record` for `task`; False when it stopped being usable meanwhile.

    One conditional UPDATE, so a single-use code quoted by two requests at once serves one."""
    now = utcnow()
    with write_transaction():
        used = (BypassCode
                .update(used_count=BypassCode.used_count + 1, last_used_at=now, last_used_on=task.number)
                .where(BypassCode.id == record.id, _usable_condition(now))
                .execute())
        if used:
            audit.record("bypass_code_use", actor, "bypass_code", record.sys_id, {
                "hint": record.hint, "ticket": task.number, "request_id": task.request_id,
                "requester": task.requester, "rule": rule.name,
            })
    return bool(used)
