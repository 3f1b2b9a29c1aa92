"""Setting up the README's demo: the broker wired to a local fake EPM tenant.

Only an unconfigured broker is wired to the fake, with auto-close on so the demo's loop ends in a closed
ticket (real deployments keep auto-close off unless an admin turns it on); a real EPM connection is never
overwritten, and no existing account's password is ever reset.
"""
import os
from pathlib import Path

from app import contract
from app.auth.accounts import create_account, generate_password, password_matches
from app.configuration import update_configuration
from app.db import write_transaction
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from app.errors import BadRequest
from app.models import Account, Configuration

DEMO_API_ACCOUNT = "epm-demo"
PASSWORD_VARIABLE = "FAKE_EPM_WEBHOOK_PASSWORD"


def stored_password(env_file):
    """The fake EPM's webhook password written in `env_file` by an earlier run, or None."""
    try:
        lines = Path(env_file).read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    for line in lines:
        name, separator, value = line.partition("=")
        if separator and name.strip() == PASSWORD_VARIABLE and value.strip():
            return value.strip()
    return None


def _write_env_file(env_file, password):
    env_file = Path(env_file)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{PASSWORD_VARIABLE}={password}\n")


def _demo_account(env_file):
    """Create the fake EPM's api account, or check that `env_file` holds the password of the existing one.

    BadRequest when the account exists and its password is not known here: resetting it would lock out
    whatever uses it."""
    with write_transaction():
        account = Account.by_username(DEMO_API_ACCOUNT)
        if account is None:
            password = generate_password()
            create_account(DEMO_API_ACCOUNT, contract.ROLE_API, password)
            _write_env_file(env_file, password)
            return
    if account.role != contract.ROLE_API or not account.active:
        raise BadRequest(f"The account {DEMO_API_ACCOUNT!r} exists and is not an active api account, so the fake "
                         "EPM cannot deliver with it; demo-setup leaves existing accounts alone")
    password = stored_password(env_file)
    if password is None or not password_matches(account, password):
        raise BadRequest(f"The account {DEMO_API_ACCOUNT!r} exists and {env_file} does not hold its password; "
                         "demo-setup never resets a password. Write it there as "
                         f"{PASSWORD_VARIABLE}=..., or give the account a new one with "
                         f"`jitbroker users set-password {DEMO_API_ACCOUNT}` and write that")


def prepare_demo(env_file, fake_epm_url):
    """Give the fake EPM an api account and point an unconfigured broker at it, with auto-close on.

    A new account's password goes to `env_file` (mode 0600) as FAKE_EPM_WEBHOOK_PASSWORD for the Procfile
    runner; an existing account keeps its password. Returns True when the configuration now names the fake."""
    _demo_account(env_file)
    configuration = Configuration.default()
    if configuration.pmc_host and configuration.pmc_host != fake_epm_url:
        return False
    update_configuration({"pmc_host": fake_epm_url, "client_id": DEFAULT_CLIENT_ID,
                          "client_secret": DEFAULT_CLIENT_SECRET, "auto_close": "true"})
    return True
