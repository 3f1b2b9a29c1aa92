"""Plain HTTP to a running fake EPM for its tests: the read paths and a client holding one token."""
import requests

from app import contract
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

V3_APPLICATION = "/management-api/v3/AuthorizationRequest"
V2_APPLICATION = "/management-api/v2/AuthorizationRequest"
V3_ADMIN = "/management-api/v3/AdminAccessRequest"
V2_ADMIN = "/management-api/v2/AdminAccessRequest"


class Api:
    """The management API of a running fake, called with a token it issued, as plain HTTP."""

    def __init__(self, fake):
        self.base = fake.url
        token = requests.post(f"{fake.url}{contract.EPM_TOKEN_PATH}", timeout=5, data={
            "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET}).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self._keys = 0

    def get(self, path, **params):
        return requests.get(f"{self.base}{path}", params=params, headers=self.headers, timeout=5)

    def post(self, path, body):
        """POST a decision body with a fresh idempotency key."""
        self._keys += 1
        return requests.post(f"{self.base}{path}", json=body, timeout=5,
                             headers={**self.headers, contract.IDEMPOTENCY_HEADER: f"key-{self._keys}"})
