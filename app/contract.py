"""The EPM and ticket contracts in code (see ../shared/contract/): every other module refers to these names."""
import re
from dataclasses import dataclass

WEBHOOK_PATH = "/api/x_bets_pmc_jit/authorization_request_webhook_handler"
# The WSGI environ key marking a request the ServiceNow Batch API runs on its caller's behalf
# (app/servicenow_api/batch.py); app/http.py holds only requests that came over the wire to the request line cap.
BATCHED_REQUEST = "jitbroker.batched_request"
API_PREFIX = "/api/x_bets_pmc_jit"

# An unreplaced template placeholder, in any letter case, as a whole value means "no value" (epm.md §5.4).
PLACEHOLDER = re.compile(r"^%%[A-Za-z0-9_]+%%$")
# A number EPM writes with a zero fraction ("1800.0") is the whole number.
ZERO_FRACTION = re.compile(r"^([+-]?\d+)\.0*$")

# --- Roles --------------------------------------------------------------------

ROLE_API = "api"
ROLE_USER = "user"
ROLE_ADMIN = "admin"
# May read tickets through the ServiceNow Table API subset (app/servicenow_api) and
# nothing else: the identity a PAM product validates ticket numbers with.
ROLE_READER = "reader"
ROLES = (ROLE_API, ROLE_USER, ROLE_ADMIN, ROLE_READER)
APPROVER_ROLES = (ROLE_USER, ROLE_ADMIN)

# --- Kinds of JIT request -----------------------------------------------------

KIND_APPLICATION = "application"
KIND_ADMIN = "admin"
KIND_LABELS = {KIND_APPLICATION: "Application Access", KIND_ADMIN: "Admin Access"}

# --- Webhook events -----------------------------------------------------------


@dataclass(frozen=True)
class EventType:
    """One EPM webhook event: its wire name, the request kind, and its role."""

    name: str
    kind: str
    is_created: bool


URM_TICKET_CREATED = EventType("URM_Native_Ticket_Created", KIND_APPLICATION, True)
URM_DECISION_UPDATE = EventType("URM_NATIVE_DECISION_UPDATE", KIND_APPLICATION, False)
ADMIN_TICKET_CREATED = EventType("JIT_ADMIN_TICKET_CREATED", KIND_ADMIN, True)
ADMIN_TICKET_UPDATED = EventType("JIT_ADMIN_TICKET_UPDATED", KIND_ADMIN, False)

EVENT_TYPES = {
    event.name: event
    for event in (URM_TICKET_CREATED, URM_DECISION_UPDATE, ADMIN_TICKET_CREATED, ADMIN_TICKET_UPDATED)
}


def find_event_type(name):
    """The EventType for a wire name, matched without regard to case, or None."""
    if not isinstance(name, str):
        return None
    wanted = name.strip().casefold()
    for event in EVENT_TYPES.values():
        if event.name.casefold() == wanted:
            return event
    return None


def user_key(name):
    """A user name reduced for comparison: `CORP\\mrivera`, `mrivera@corp.example` and `MRivera` compare equal."""
    text = (name or "").strip()
    text = text.rsplit("\\", 1)[-1]
    text = text.split("@", 1)[0]
    return text.casefold()


# The keys of `requestInfo` in URM_Native_Ticket_Created, case as EPM sends them.
URM_REQUEST_INFO_KEYS = (
    "applicationType", "action", "workstyle", "reason", "user", "hostName",
    "trustedOwnership", "productDescription", "driveType", "btZoneIdentifierExists",
    "productCode", "upgradeCode", "clsId", "comDisplayName", "token",
    "tokenAssignmentIsShell", "uacTriggered", "downloadSourceUrl", "userLanguage",
    "sha1Hash", "sha256Hash", "filePathObjectId", "cmdArgs", "publisher", "productName",
    "productVersion", "fileVersion", "applicationGroup", "message", "messageId",
    "hostType", "osName", "osVersion", "ComputerGroup", "GroupId", "requestVersion",
    "hostedFilePath", "parentProcess", "storeAppName", "serviceName", "serviceAction",
    "authRequestUri", "bundleInfoDescription", "reputationScoreDateTime",
    "reputationScore", "reputationIntegrationType",
)

# Delivery processing states of an incoming request.
INCOMING_RECEIVED = "received"
INCOMING_PROCESSED = "processed"
INCOMING_DUPLICATE = "duplicate"
INCOMING_ERROR = "error"
INCOMING_STATUSES = (INCOMING_RECEIVED, INCOMING_PROCESSED, INCOMING_DUPLICATE, INCOMING_ERROR)

# --- Ticket types, numbers and states -----------------------------------------


@dataclass(frozen=True)
class TicketType:
    """A task table a JIT request can become, with its numbering and states."""

    label: str
    table: str
    prefix: str
    first_number: int
    states: tuple  # ((value, label), ...) in display order
    new_state: int
    closed_state: int

    def state_label(self, value):
        return dict(self.states).get(value, str(value))

    def state_value(self, label):
        """The state value for a label (case-insensitive) or a numeric string, else None."""
        if isinstance(label, int) and label in dict(self.states):
            return label
        text = str(label).strip()
        for value, state_label in self.states:
            if state_label.casefold() == text.casefold() or str(value) == text:
                return value
        return None

    def format_number(self, counter):
        return f"{self.prefix}{counter:07d}"


INCIDENT = TicketType(
    "Incident", "incident", "INC", 10001,
    ((1, "New"), (2, "In Progress"), (3, "On Hold"), (6, "Resolved"), (7, "Closed"), (8, "Canceled")),
    new_state=1, closed_state=7,
)
CHANGE_REQUEST = TicketType(
    "Change Request", "change_request", "CHG", 1,
    ((-5, "New"), (-4, "Assess"), (-3, "Authorize"), (-2, "Scheduled"), (-1, "Implement"),
     (0, "Review"), (3, "Closed"), (4, "Canceled")),
    new_state=-5, closed_state=3,
)
_CATALOG_STATES = ((1, "Open"), (2, "Work in Progress"), (3, "Closed Complete"),
                   (4, "Closed Incomplete"), (7, "Closed Skipped"))
CATALOG_TASK = TicketType("Service Catalog – Task", "sc_task", "SCTASK", 10001,
                          _CATALOG_STATES, new_state=1, closed_state=3)
REQUESTED_ITEM = TicketType("Service Catalog – Requested Item", "sc_req_item", "RITM", 10001,
                            _CATALOG_STATES, new_state=1, closed_state=3)

TICKET_TYPES = {t.table: t for t in (INCIDENT, CHANGE_REQUEST, CATALOG_TASK, REQUESTED_ITEM)}
DEFAULT_TICKET_TYPE = INCIDENT.table


def find_ticket_type(name):
    """A TicketType by table name, label or prefix (case-insensitive; '-' for '–'), or None."""
    wanted = str(name).strip().replace("-", "–").casefold()
    for ticket_type in TICKET_TYPES.values():
        names = (ticket_type.table, ticket_type.label, ticket_type.prefix)
        if wanted in (n.replace("-", "–").casefold() for n in names):
            return ticket_type
    return None


def ticket_type_for_number(number):
    """The TicketType whose prefix a ticket number carries, or None."""
    text = str(number).upper()
    # Longest prefix first so SCTASK is not mistaken for a shorter prefix.
    for ticket_type in sorted(TICKET_TYPES.values(), key=lambda t: -len(t.prefix)):
        digits = text[len(ticket_type.prefix):]
        if text.startswith(ticket_type.prefix) and len(digits) == 7 and digits.isdigit():
            return ticket_type
    return None


ALL_STATE_LABELS = tuple(dict.fromkeys(label for t in TICKET_TYPES.values() for _, label in t.states))
DEFAULT_ACTIVE_STATES = ("New", "In Progress", "On Hold")

# --- Decisions ------------------------------------------------------------------

DECISION_APPROVED = "Approved"
DECISION_DENIED = "Denied"
DECISIONS = (DECISION_APPROVED, DECISION_DENIED)


def find_decision(text):
    """The decision (DECISIONS) `text` names, matched without regard to case, or None: EPM decides Approved or
    Denied and nothing else (epm.md §3, §5.8), so other text (a template's `{decision}`) is no decision."""
    if not isinstance(text, str):
        return None
    wanted = text.strip().casefold()
    return next((decision for decision in DECISIONS if decision.casefold() == wanted), None)


# What a later update from EPM made of its final decision (contract/epm.md 5.3); none of them is sent to EPM.
EPM_OUTCOME_REVOKED = "Revoked"          # Admin Access: approved, then set to Denied
EPM_OUTCOME_ENDED_EARLY = "Ended early"  # Admin Access: still approved, the session ended before its end time
EPM_OUTCOME_CHANGED = "Changed"          # Application Access (no revocation there): a newer, different decision
EPM_OUTCOMES = (EPM_OUTCOME_REVOKED, EPM_OUTCOME_ENDED_EARLY, EPM_OUTCOME_CHANGED)

DURATION_ONCE = "once"
DURATION_MINUTES = "minutes"
DURATION_HOURS = "hours"
DURATION_LIMITS = {DURATION_MINUTES: (5, 1440), DURATION_HOURS: (1, 24)}

MSG_REASON_REQUIRED = "Please enter a reason"
# Not in the contract: a bound on the reason EPM shows the requester, so no decision carries megabytes to it.
MAX_REASON_LENGTH = 2000
MSG_REASON_TOO_LONG = f"Keep the reason to {MAX_REASON_LENGTH} characters or fewer"
# A NUL (PostgreSQL stores none) or an unpaired surrogate (legal as a JSON escape, no UTF-8): no database takes it.
MSG_REASON_UNSTORABLE = "The reason cannot contain NUL characters or unpaired surrogates"
MSG_MINUTES_RANGE = "Enter a number between 5 and 1440"
MSG_HOURS_RANGE = "Enter a number between 1 and 24"
MSG_INACTIVE = "You cannot modify the decision because this request is inactive"
MSG_FINAL = "The server has accepted the decision. It is now final and cannot be changed"
DURATION_MESSAGES = {DURATION_MINUTES: MSG_MINUTES_RANGE, DURATION_HOURS: MSG_HOURS_RANGE}

# --- EPM management API (contract/epm.md §2–4; unconfirmed values are configurable) ---

EPM_TOKEN_PATH = "/oauth/connect/token"
EPM_APPLICATION_DECISION_PATH = "/management-api/v2/AuthorizationRequest/notification"
EPM_ADMIN_DECISION_PATH = "/management-api/v3/AdminAccessRequest/approval"
EPM_ADMIN_ONCE_DURATION = "Once"
EPM_APPLICATION_LIST_PATH = "/management-api/v3/AuthorizationRequest"
EPM_ADMIN_LIST_PATH = "/management-api/v3/AdminAccessRequest"
EPM_STATUS_APPROVED = "2000"
EPM_STATUS_DENIED = "2001"
# accessDecision.status of a request EPM has not decided: the name, and its code in one public client ([XSOAR-AR]
# maps "Pending" to "1000"; contract/epm.md 5.9). Unconfirmed as record values, like every status.
EPM_STATUSES_PENDING = ("Pending", "1000")
EPM_DURATION_ONCE = "Once"
EPM_DECISION_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
EPM_SERVICES_SUFFIX = "-services"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# §5.6: credentials in the form body; HTTP Basic only as a setting; the scope sent only when set.
TOKEN_AUTH_POST = "client_secret_post"
TOKEN_AUTH_BASIC = "client_secret_basic"
TOKEN_AUTH_METHODS = (TOKEN_AUTH_POST, TOKEN_AUTH_BASIC)
EPM_TOKEN_SCOPE = "urn:management:api"
CORRELATION_HEADER = "x-correlation-id"  # §5.7: sent on decision calls, kept when EPM answers one

# --- Decision delivery to EPM (the outbox) -------------------------------------------

DELIVERY_PENDING = "pending"      # waiting for its next attempt
DELIVERY_SENDING = "sending"      # claimed by a process that is calling EPM now
DELIVERY_DELIVERED = "delivered"  # EPM answered 2xx: the decision is final
DELIVERY_FAILED = "failed"        # EPM refused it for good (4xx other than 401/408/429)
DELIVERY_STATUSES = (DELIVERY_PENDING, DELIVERY_SENDING, DELIVERY_DELIVERED, DELIVERY_FAILED)
# How a request ended, in the words the ticket page lists earlier requests with (app/tickets/outcome.py).
OUTCOME_AWAITING = "Awaiting decision"
OUTCOME_SENDING = "{decision} - sending to EPM"
OUTCOME_FAILED_TO_SEND = "Failed to send"
OUTCOME_EXPIRED = "Expired"  # nobody decided within `[tickets] expire_pending_hours` (app/jobs/expiry.py)
MSG_DECISION_IN_FLIGHT = "A decision on this request is already being sent to EPM"
MSG_SELF_APPROVAL = ("You asked for this access yourself: another approver must approve it. "
                     "You may still deny it")
