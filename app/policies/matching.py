"""What a rule can match a request by, and finding ticket references in a reason.

Matchers are case-insensitive globs over the whole value; a value EPM did not send matches only `*`."""
import fnmatch
import re
from dataclasses import dataclass

from app import contract

# Rule column -> (label, the RequestFacts attribute it is matched against).
MATCHERS = {
    "kind": "Kind",
    "computer_group": "EPM computer group",
    "group_id": "EPM group ID",
    "application_group": "Application group",
    "publisher": "Publisher",
    "workstyle": "Workstyle",
    "user": "User",
}

# ServiceNow's task number formats: a prefix and 7 digits. SCTASK is ServiceNow's
# catalog task prefix (and the broker's own), so it is included beside TASK.
SERVICENOW_PREFIXES = ("PRJTASK", "SCTASK", "CTASK", "RITM", "TASK", "INC", "CHG", "REQ", "PRB", "PRJ")
SERVICENOW_REFERENCE = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(SERVICENOW_PREFIXES) + r")(\d{7})(?!\d)", re.IGNORECASE)


@dataclass(frozen=True)
class RequestFacts:
    """The values of one JIT request the rules look at."""

    kind: str
    computer_group: str = None
    group_id: str = None
    application_group: str = None
    publisher: str = None
    workstyle: str = None
    user: str = None
    reason: str = ""

    @classmethod
    def from_task(cls, task):
        jit = task.jit_request
        if task.kind == contract.KIND_APPLICATION:
            info = jit.request_info or {}
            return cls(kind=task.kind, computer_group=info.get("ComputerGroup"), group_id=info.get("GroupId"),
                       application_group=info.get("applicationGroup"), publisher=info.get("publisher"),
                       workstyle=info.get("workstyle"), user=task.requester, reason=jit.reason or "")
        return cls(kind=task.kind, group_id=jit.group_id, user=task.requester, reason=jit.reason or "")


def glob_matches(pattern, value):
    """Whether `value` matches the case-insensitive glob `pattern` as a whole."""
    return fnmatch.fnmatchcase((value or "").casefold(), pattern.strip().casefold())


def rule_matches(rule, facts):
    """Whether every matcher the rule sets matches the request."""
    for name in MATCHERS:
        pattern = (getattr(rule, name) or "").strip()
        if pattern and not glob_matches(pattern, getattr(facts, name)):
            return False
    return True


def compile_reference_pattern(rule):
    """The rule's reference pattern as a compiled regex (ValueError for a broken custom one)."""
    if rule.reference_pattern == "regex":
        try:
            return re.compile(rule.custom_regex, re.IGNORECASE)
        except re.error as error:
            raise ValueError(f"the reference regex does not compile: {error}") from None
    return SERVICENOW_REFERENCE


def find_reference(rule, reason):
    """The first ticket reference in `reason` by the rule's pattern (its capture group, if any), upper-cased."""
    match = compile_reference_pattern(rule).search(reason or "")
    if match is None:
        return None
    if rule.reference_pattern == "regex":
        text = match.group(1) if match.re.groups else match.group(0)
    else:
        text = match.group(1) + match.group(2)
    return (text or "").strip().upper() or None
