"""The named system identity automatic decisions are taken as (`policy-engine` unless configured): an ordinary
`user` account with a password nobody is told, so EPM and the audit log see a named approver."""
from app import contract
from app.auth.accounts import create_account
from app.db import write_transaction
from app.errors import Conflict
from app.models import Account
from app.policies.models import PolicySettings


def system_account():
    """The system identity's account, created (role user) when it does not exist yet."""
    name = PolicySettings.current().system_account
    account = Account.by_username(name)
    if account is not None:
        return account
    try:
        with write_transaction():
            account, _password = create_account(name, contract.ROLE_USER, set_by_admin=False)
    except Conflict:
        # Another process created it first.
        account = Account.by_username(name)
    return account
