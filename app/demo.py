"""Setting up the README's demo: the broker wired to a local fake EPM tenant.

Only an unconfigured broker is wired to the fake: a real EPM connection is never
overwritten.
"""
import os
from pathlib import Path

from app import contract
from app.auth.accounts import create_account, set_password, generate_password
from app.configuration import update_configuration
from app.db import write_transaction
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from app.models import Account, Configuration

DEMO_API_ACCOUNT = "epm-demo"


def prepare_demo(env_file, fake_epm_url):
    """Give the fake EPM an api account and point an unconfigured broker at it.

    Writes the account's password to `env_file` (mode 0600) as FAKE_EPM_WEBHOOK_PASSWORD
    for the Procfile runner; returns True when the configuration now names the fake.
    """
    password = generate_password()
    with write_transaction():
        account = Account.by_username(DEMO_API_ACCOUNT)
        if account is None:
            create_account(DEMO_API_ACCOUNT, contract.ROLE_API, password)
        else:
            set_password(account, password)
    env_file = Path(env_file)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"FAKE_EPM_WEBHOOK_PASSWORD={password}\n")
    configuration = Configuration.default()
    if configuration.pmc_host and configuration.pmc_host != fake_epm_url:
        return False
    update_configuration({"pmc_host": fake_epm_url, "client_id": DEFAULT_CLIENT_ID,
                          "client_secret": DEFAULT_CLIENT_SECRET})
    return True
