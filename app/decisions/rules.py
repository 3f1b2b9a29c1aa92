"""The decision form's rules (contract/tickets.md "Decisions") as a marshmallow schema, the authority
the browser's checks copy; each broken rule answers with the contract's exact message."""
import re

from marshmallow import Schema, ValidationError, fields, validates_schema

from app import contract
from app.errors import BadRequest

# What no database stores: NUL (PostgreSQL refuses it) and unpaired surrogates (JSON may escape them, UTF-8 has none).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class DecisionSchema(Schema):
    decision = fields.String(required=True, error_messages={"required": "Choose Approved or Denied"})
    reason = fields.String(load_default="", allow_none=True)
    duration_unit = fields.String(load_default=None, allow_none=True)
    duration_value = fields.Raw(load_default=None, allow_none=True)

    @validates_schema
    def _check(self, data, **kwargs):
        errors = {}
        decision = str(data.get("decision") or "").strip().capitalize()
        if decision not in contract.DECISIONS:
            errors["decision"] = ["Choose Approved or Denied"]
        reason = str(data.get("reason") or "").strip()
        if not reason:
            errors["reason"] = [contract.MSG_REASON_REQUIRED]
        elif len(reason) > contract.MAX_REASON_LENGTH:
            errors["reason"] = [contract.MSG_REASON_TOO_LONG]
        elif _UNSTORABLE.search(reason):
            errors["reason"] = [contract.MSG_REASON_UNSTORABLE]
        if decision == contract.DECISION_APPROVED:
            unit = str(data.get("duration_unit") or "").strip().lower()
            if unit not in (contract.DURATION_ONCE, *contract.DURATION_LIMITS):
                errors["duration_unit"] = ["Choose Once, Minutes or Hours"]
            elif unit in contract.DURATION_LIMITS and _duration_number(data.get("duration_value"), unit) is None:
                errors["duration_value"] = [contract.DURATION_MESSAGES[unit]]
        if errors:
            raise ValidationError(errors)


def _duration_number(value, unit):
    """The whole number of minutes or hours, or None when it is outside the unit's range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        # ASCII only: "²" is a digit to isdigit() but not to int().
        if not (value.isascii() and value.isdigit()):
            return None
    elif isinstance(value, float):
        # JSON has one number type: 11.0 is the integer 11 to JSON Schema and to EPM's clients.
        if not value.is_integer():
            return None
    elif not isinstance(value, int):
        return None
    try:
        number = int(value)
    except ValueError:  # over Python's 4,300 digits for a conversion
        return None
    low, high = contract.DURATION_LIMITS[unit]
    return number if low <= number <= high else None


def clean_decision(decision, reason, duration_unit=None, duration_value=None):
    """Check a decision form; returns (decision, reason, unit, value), or raises BadRequest with
    the first rule broken, in form order, and a message for each broken field."""
    try:
        data = DecisionSchema().load({"decision": decision, "reason": reason, "duration_unit": duration_unit,
                                      "duration_value": duration_value})
    except ValidationError as error:
        broken = {name: messages[0] for name, messages in error.messages.items()}
        first = next(broken[name] for name in ("decision", "reason", "duration_unit", "duration_value", *broken)
                     if name in broken)
        raise BadRequest(first, extra={"fields": broken}) from None
    decision = data["decision"].strip().capitalize()
    if decision == contract.DECISION_DENIED:
        return decision, data["reason"].strip(), None, None
    unit = data["duration_unit"].strip().lower()
    value = None if unit == contract.DURATION_ONCE else _duration_number(data["duration_value"], unit)
    return decision, data["reason"].strip(), unit, value


def requested_duration(seconds):
    """(unit, value) for the duration an Admin Access user requested, in seconds (contract/epm.md 5.8):
    hours when whole, else minutes; None when missing, unreadable, not whole minutes or out of range."""
    try:
        minutes, rest = divmod(float(seconds), 60)
    except (TypeError, ValueError):
        return None
    low, high = contract.DURATION_LIMITS[contract.DURATION_MINUTES]
    if rest or not low <= minutes <= high:  # NaN and infinity fail here too
        return None
    if minutes % 60:
        return contract.DURATION_MINUTES, str(int(minutes))
    return contract.DURATION_HOURS, str(int(minutes // 60))
