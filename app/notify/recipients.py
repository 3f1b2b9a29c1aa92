"""Who is told about a ticket: active approvers with an e-mail address in its assignment group (all of them
when it has none); `groups` is a comma-separated list matched without regard to case. Ops alerts go to
active admins with an e-mail address."""
from app import contract
from app.models import Account


def parse_groups(text):
    """The group names in a comma-separated list, trimmed, without empties or repeats (in any case)."""
    names = {}
    for part in (text or "").split(","):
        if part.strip():
            names.setdefault(part.strip().casefold(), part.strip())
    return list(names.values())


def format_groups(groups):
    return ", ".join(parse_groups(",".join(groups) if isinstance(groups, (list, tuple)) else groups))


def in_group(account, group):
    wanted = group.strip().casefold()
    return any(name.casefold() == wanted for name in parse_groups(account.groups))


def approvers_for(task):
    """The accounts to notify about `task`, by user name."""
    approvers = (Account.select()
                 .where(Account.role.in_(contract.APPROVER_ROLES), Account.active == True,  # noqa: E712
                        Account.email != "")
                 .order_by(Account.username))
    group = (task.assignment_group or "").strip()
    return [account for account in approvers if not group or in_group(account, group)]


def email_addresses(task):
    """The distinct e-mail addresses of `approvers_for(task)`."""
    return list(dict.fromkeys(account.email for account in approvers_for(task)))


def ops_addresses():
    """The distinct e-mail addresses of active admins: where ops alerts go by e-mail."""
    admins = (Account.select(Account.email)
              .where(Account.role == contract.ROLE_ADMIN, Account.active == True,  # noqa: E712
                     Account.email != "")
              .order_by(Account.username))
    return list(dict.fromkeys(account.email for account in admins))
