"""`jitbroker fake-epm` as the demo and a tester run it: a real process on loopback, strict on request."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app import contract
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

JITBROKER = str(Path(sys.executable).parent / "jitbroker")


def _list_envelope(*options):
    """The keys of the Admin Access list a `jitbroker fake-epm` started with `options` answers."""
    with subprocess.Popen([JITBROKER, "fake-epm", "--port", "0", *options], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as process:
        try:
            url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", process.stdout.readline()).group(1)
            token = requests.post(f"{url}{contract.EPM_TOKEN_PATH}", timeout=10, data={
                "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET}).json()["access_token"]
            answer = requests.get(f"{url}{contract.EPM_ADMIN_LIST_PATH}", timeout=10,
                                  headers={"Authorization": f"Bearer {token}"})
            return set(answer.json())
        finally:
            process.terminate()


@pytest.mark.parametrize(("options", "keys"), [
    ((), {"pageNumber", "pageSize", "totalRecordCount", "pageCount", "data"}),
    (("--strict",), {"totalRecordCount", "pageCount", "data"}),  # the keys section 5 confirms
])
def test_the_fake_epm_command_serves_strict_shapes_when_asked(options, keys):
    assert _list_envelope(*options) == keys
