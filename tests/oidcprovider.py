"""A real OpenID provider on loopback for the tests: oidc-provider (npm, pinned in package.json) run by Node."""
import json
import re
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import requests

from tests.live import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "oidc" / "provider.mjs"
CLIENT_ID, CLIENT_SECRET = "jitbroker", "jitbroker-test-client-secret"
ADMIN_GROUP, APPROVER_GROUP = "jit-admins", "jit-approvers"


class OidcProvider:
    """oidc-provider with one client (the broker at `broker_url`) and `users` ({login: claims}); a person signs in
    on its development login page with any password. Its signing key is new at each start."""

    def __init__(self, broker_url, users, directory):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config_path = Path(directory) / "oidc-provider.json"
        self.users = dict(users)
        self.broker_url = broker_url
        self.process = None
        self._write()

    def _write(self):
        client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                  "redirect_uris": [f"{self.broker_url}/sign-in/oidc/callback"],
                  "post_logout_redirect_uris": [f"{self.broker_url}/sign-in"]}
        self.config_path.write_text(json.dumps({"client": client, "users": self.users}))

    def set_groups(self, login, groups):
        """Move a person to other groups, as a directory admin would (read at the next sign-in or refresh)."""
        self.users[login] = {**self.users[login], "groups": list(groups)}
        self._write()

    def remove_user(self, login):
        """Delete a person from the directory, as disabling their account does: the provider refuses their refresh
        token from then on (invalid_grant)."""
        del self.users[login]
        self._write()

    def grants(self, grant_type=None):
        """The token requests the provider answered, oldest first: [{grant_type, account, error}], `error` None for
        a token it issued, else its error code (e.g. invalid_grant)."""
        answered = requests.get(f"{self.issuer}/_test/grants", timeout=5).json()
        return [grant for grant in answered if grant_type in (None, grant["grant_type"])]

    def sign_in(self, client, login):
        """Sign `login` in to the broker behind `client` (a test client, e.g. tests/webclient.WebClient) through the
        provider's login page, as a browser would, and return the broker's answer to the provider's redirect."""
        location = client.get("/sign-in/oidc").headers["Location"]
        with requests.Session() as browser:
            for _hop in range(10):
                if location.startswith(self.broker_url + "/"):
                    return client.get(location.removeprefix(self.broker_url))
                answer = browser.get(location, allow_redirects=False, timeout=5)
                if not answer.is_redirect:
                    # The development login page: any password.
                    form = re.search(r'<form[^>]*action="([^"]+)"', answer.text)
                    assert form, f"no login form at {location}: {answer.status_code} {answer.text[:300]}"
                    answer = browser.post(urljoin(location, unescape(form.group(1))), allow_redirects=False,
                                          timeout=5, data={"prompt": "login", "login": login, "password": "any"})
                location = urljoin(answer.url, answer.headers["Location"])
        raise AssertionError(f"the provider never sent the browser back to the broker: {location}")

    def broker_settings(self, **extra):
        """The broker's environment for this provider."""
        return {"JITBROKER_OIDC_ISSUER": self.issuer, "JITBROKER_OIDC_CLIENT_ID": CLIENT_ID,
                "JITBROKER_OIDC_CLIENT_SECRET": CLIENT_SECRET, "JITBROKER_OIDC_ADMIN_GROUPS": ADMIN_GROUP,
                "JITBROKER_OIDC_APPROVER_GROUPS": APPROVER_GROUP, "JITBROKER_OIDC_BUTTON_LABEL": "Test IdP", **extra}

    def start(self):
        self.process = subprocess.Popen(["node", str(SCRIPT), str(self.port), str(self.config_path)], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        def answers():
            assert self.process.poll() is None, "oidc-provider exited: run `npm ci` at the repository root"
            try:
                return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(answers, timeout=30, interval=0.1, message="oidc-provider to answer")
        return self

    def signing_key_ids(self):
        return [key["kid"] for key in requests.get(f"{self.issuer}/jwks", timeout=5).json()["keys"]]

    def rotate_signing_key(self):
        """A new signing key (and no old one), the provider's sessions forgotten: it starts again on its port."""
        self.stop()
        self.start()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process and self.process.stdout:
            self.process.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
