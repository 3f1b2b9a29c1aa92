"""Words the browser pages show: the decision actions and the detail fields of each kind.

Action names are built from the contract's kind labels, so "Approve Application
Access" and its siblings change only when the contract does.
"""
from app import contract

ACTION_VERBS = {contract.DECISION_APPROVED: "Approve", contract.DECISION_DENIED: "Deny"}

# The URL slug of each decision, so a form's address says what it does.
DECISION_SLUGS = {contract.DECISION_APPROVED: "approve", contract.DECISION_DENIED: "deny"}
DECISIONS_BY_SLUG = {slug: decision for decision, slug in DECISION_SLUGS.items()}


def action_label(decision, kind):
    """`Approve Application Access`, `Deny Admin Access`, ..."""
    return f"{ACTION_VERBS[decision]} {contract.KIND_LABELS[kind]}"


ACTION_LABELS = {(decision, kind): action_label(decision, kind)
                 for decision in contract.DECISIONS for kind in contract.KIND_LABELS}

DURATION_UNIT_LABELS = {
    contract.DURATION_ONCE: "Once",
    contract.DURATION_MINUTES: "Minutes",
    contract.DURATION_HOURS: "Hours",
}

DELIVERY_LABELS = {
    contract.DELIVERY_PENDING: "Waiting to be sent to EPM",
    contract.DELIVERY_SENDING: "Being sent to EPM",
    contract.DELIVERY_DELIVERED: "Delivered to EPM",
    contract.DELIVERY_FAILED: "Refused by EPM",
}

# Application Access: (label, requestInfo key) in the order an approver reads them.
APPLICATION_DETAILS = (
    ("Requester", "user"),
    ("Host", "hostName"),
    ("File path", "filePathObjectId"),
    ("Product name", "productName"),
    ("Product version", "productVersion"),
    ("Product description", "productDescription"),
    ("File version", "fileVersion"),
    ("Publisher", "publisher"),
    ("SHA-1", "sha1Hash"),
    ("SHA-256", "sha256Hash"),
    ("Reason", "reason"),
    ("Command-line arguments", "cmdArgs"),
    ("Workstyle", "workstyle"),
    ("Application group", "applicationGroup"),
    ("Application type", "applicationType"),
    ("Action", "action"),
    ("OS", "osName"),
    ("OS version", "osVersion"),
    ("Parent process", "parentProcess"),
    ("Reputation score", "reputationScore"),
    ("Reputation source", "reputationIntegrationType"),
    ("Reputation checked at", "reputationScoreDateTime"),
    ("Download source", "downloadSourceUrl"),
    ("UAC triggered", "uacTriggered"),
    ("Trusted ownership", "trustedOwnership"),
    ("EPM message", "message"),
)

# Admin Access: (label, AdminTicket attribute).
ADMIN_DETAILS = (
    ("User name", "user_name"),
    ("User ID", "user_id"),
    ("Computer ID", "computer_id"),
    ("Group ID", "group_id"),
    ("Duration requested", "duration_requested"),
    ("Reason", "reason"),
)
