"""The OpenID Connect client, through Authlib: discovery, the code exchange with the ID token's checks, and the
re-check that ends the sessions of a person the provider no longer vouches for.

Authlib reads the provider's discovery document once per process and its signing keys (JWKS) when
first needed; an ID token signed with a key it does not know yet makes it read the keys again, so a
provider that rotates its key is followed without a restart. Checks on the ID token: signature,
issuer, audience, expiry and issue time with CLOCK_SKEW_SECONDS of tolerance, nonce, and at_hash.

A signed-in person is re-checked with the provider at least once per half idle time
(`[session] idle_minutes`): the refresh token (or, without one, the access token at the userinfo
endpoint) must still be honoured and the groups claim must still give a role. A provider that
refuses ends every session of the account at once; one that cannot be reached is asked again
no sooner than RETRY_SECONDS later (by this process), each time for at most RECHECK_TIMEOUT_SECONDS,
and past the idle time without an answer the session ends too. A page's own polling never asks
(`may_ask=False`): with a few sync workers, provider users waiting on an outage must not hold
the workers EPM's webhooks need.
"""
import json
import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import current_app
from joserfc.errors import JoseError

from app.auth import oidc
from app.auth.models import BrowserSession
from app.models import Account, utcnow

log = logging.getLogger(__name__)

PROVIDER = "idp"
CLOCK_SKEW_SECONDS = 120
TIMEOUT_SECONDS = 10
# The re-check runs inside a person's request: it waits briefly, and an unreachable provider is not asked again
# for a while (per process: app.extensions["oidc_retry_not_before"], account id -> monotonic time).
RECHECK_TIMEOUT_SECONDS = 3
RETRY_SECONDS = 60
# What a call to the provider can raise: its refusal (OAuthError), a token failing a check, or no answer.
PROVIDER_ERRORS = (AuthlibBaseError, JoseError, requests.RequestException, ValueError, KeyError)


class ProviderRefused(Exception):
    """The provider answered, and no longer vouches for the person (refused refresh, rejected token)."""


def init_app(app):
    """Register the provider's client on `app` when an issuer is set."""
    settings = app.extensions["settings"]
    if not settings.oidc_enabled:
        return
    registry = OAuth(app)
    registry.register(
        PROVIDER,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or None,
        server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": " ".join(oidc.scope_list(settings)), "code_challenge_method": "S256",
                       "default_timeout": TIMEOUT_SECONDS},
    )
    app.extensions["oidc_client"] = registry.create_client(PROVIDER)


def client():
    """This app's provider client (Authlib's FlaskOAuth2App), None when sign-in through a provider is off."""
    return current_app.extensions.get("oidc_client")


def form_action_origins(settings, discover=False):
    """Where a form post may be redirected to at the provider (CSP form-action): the issuer's origin and, once
    discovery has read them, the origins of its authorization and end-session endpoints, which some providers
    serve elsewhere (Cognito's hosted UI, custom sign-in domains). With `discover`, the discovery document is
    read now if it was not (at most once a RETRY_SECONDS while the provider does not answer)."""
    provider = client() if settings.oidc_enabled else None
    if provider is None:
        return []
    if discover:
        _discover_once(provider)
    metadata = provider.server_metadata
    origins = []
    for url in (settings.oidc_issuer, metadata.get("authorization_endpoint"), metadata.get("end_session_endpoint")):
        parts = urlsplit(url or "")
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
        if origin and origin not in origins:
            origins.append(origin)
    return origins


_discovery_retry_at = {}


def _discover_once(provider):
    if "_loaded_at" in provider.server_metadata or time.monotonic() < _discovery_retry_at.get(id(provider), 0):
        return
    try:
        provider.load_server_metadata()
    except PROVIDER_ERRORS:
        log.warning("the identity provider's discovery document could not be read; retrying in %s s",
                    RETRY_SECONDS, exc_info=True)
        _discovery_retry_at[id(provider)] = time.monotonic() + RETRY_SECONDS


def issuer():
    """The issuer as the provider's discovery document names it (the ID token's `iss` must equal it)."""
    try:
        return client().load_server_metadata().get("issuer")
    except PROVIDER_ERRORS:
        return current_app.extensions["settings"].oidc_issuer


def authorization_request(redirect_uri, **parameters):
    """The provider's authorization URL with a new state, nonce and PKCE verifier:
    {url, state, nonce, code_verifier}."""
    return client().create_authorization_url(redirect_uri, **parameters)


def exchange_code(code, redirect_uri, code_verifier, nonce):
    """(claims, token) for an authorization code: the token endpoint's answer, its ID token checked.

    The claims are the ID token's, with the userinfo endpoint's added when the ID token lacks the roles claim
    (providers that keep groups out of the ID token)."""
    token = client().fetch_access_token(redirect_uri=redirect_uri, code=code, code_verifier=code_verifier)
    if "id_token" not in token:
        raise ValueError("the provider's token answer has no ID token")
    claims = dict(client().parse_id_token(token, nonce=nonce, leeway=CLOCK_SKEW_SECONDS))
    return _with_userinfo(claims, token), token


def _with_userinfo(claims, token):
    settings = current_app.extensions["settings"]
    if settings.oidc_roles_claim in claims or not client().load_server_metadata().get("userinfo_endpoint"):
        return claims
    userinfo = dict(client().userinfo(token=token))
    if userinfo.get("sub") != claims["sub"]:
        raise ValueError("the userinfo endpoint answered for another subject")
    return {**userinfo, **claims, settings.oidc_roles_claim: userinfo.get(settings.oidc_roles_claim)}


def store_tokens(account, token):
    """Keep the tokens the re-check and sign-out need, encrypted (app/secrets.py), and mark the account checked."""
    kept = {name: token[name] for name in ("access_token", "refresh_token", "id_token", "expires_at") if name in token}
    Account.update(idp_tokens=json.dumps(kept), idp_checked_at=utcnow()).where(Account.id == account.id).execute()


def forget_unused_tokens(account_id):
    """Drop the provider's tokens of `account_id` unless one of its sessions may still be in use: called when a
    session is ended on purpose (sign-out, an admin's End or End all), so no secret is kept past its use. A
    time-out keeps them (the provider goes on vouching for the person's chat decisions). Returns how many
    accounts' tokens went (0 or 1)."""
    started = utcnow()
    in_use = BrowserSession.live(current_app.extensions["settings"]).select(BrowserSession.account)
    return Account.update(idp_tokens=None).where(
        Account.id == account_id, Account.idp_tokens.is_null(False), Account.id.not_in(in_use),
        # A sign-in opens its session, then stores its tokens and marks them checked: tokens checked after this
        # began may belong to a session opened too late for `in_use` to list (PostgreSQL, having waited for the
        # sign-in's update, re-reads the account row but not the sessions).
        Account.idp_checked_at.is_null() | (Account.idp_checked_at <= started)).execute()


def stored_tokens(account):
    try:
        return json.loads(account.idp_tokens or "{}")
    except ValueError:
        return {}


def logout_url(account, post_logout_redirect_uri):
    """The provider's end-session URL for `account` (RP-initiated logout), or None when it offers none."""
    if client() is None or not account.signs_in_with_provider:
        return None
    try:
        if not client().load_server_metadata().get("end_session_endpoint"):
            return None
        tokens = stored_tokens(account)
        return client().create_logout_url(post_logout_redirect_uri=post_logout_redirect_uri,
                                          id_token_hint=tokens.get("id_token"),
                                          client_id=client().client_id)["url"]
    except PROVIDER_ERRORS:
        log.warning("the identity provider's end-session endpoint could not be read; signed out of the broker only",
                    exc_info=True)
        return None


def still_vouched_for(account, may_ask=True):
    """True while the provider vouches for `account` (re-checked when due, see the module's docstring).
    With `may_ask=False`, or within RETRY_SECONDS of an unanswered re-check, the provider is not asked: the last
    answer stands until the idle time has passed since it."""
    if not account.signs_in_with_provider:
        return True
    settings = current_app.extensions["settings"]
    if client() is None:
        return False  # sign-in through the provider was turned off: nothing vouches for these accounts now
    if not account.idp_tokens:
        return False  # forgotten (signed out, ended by an admin, left the groups): nothing to vouch with
    retry_not_before = current_app.extensions.setdefault("oidc_retry_not_before", {})
    idle = timedelta(minutes=settings.session_idle_minutes)
    previous, now = account.idp_checked_at, utcnow()
    if previous is not None and now - previous < idle / 2:
        return True
    late = previous is None or now - previous >= idle
    if not may_ask or time.monotonic() < retry_not_before.get(account.id, 0):
        if late:
            log.warning("the identity provider has not vouched for %s within the idle time; their session ends",
                        account.username)
        return not late
    # One worker re-checks; the others go on with the last answer meanwhile.
    unchanged = Account.idp_checked_at.is_null() if previous is None else Account.idp_checked_at == previous
    if not Account.update(idp_checked_at=now).where(Account.id == account.id, unchanged).execute():
        return True
    try:
        claims, token = _fresh_claims(account)
    except ProviderRefused as refusal:
        log.warning("the identity provider no longer vouches for %s: %s; their sessions end",
                    account.username, refusal)
        oidc.end_access(account, str(refusal))
        return False
    except PROVIDER_ERRORS as error:
        Account.update(idp_checked_at=previous).where(Account.id == account.id).execute()
        retry_not_before[account.id] = time.monotonic() + RETRY_SECONDS
        log.warning("the identity provider could not re-check %s (%s)%s", account.username, error,
                    "; past the idle time without an answer, their session ends" if late else "; asked again later")
        return not late
    retry_not_before.pop(account.id, None)
    store_tokens(account, token)
    return oidc.apply_recheck(account, claims, settings)


def _fresh_claims(account):
    """(claims, token) as the provider gives them now: through the refresh token, else the access token."""
    tokens = stored_tokens(account)
    try:
        if tokens.get("refresh_token"):
            token = client().fetch_access_token(grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                                                timeout=RECHECK_TIMEOUT_SECONDS)
            token.setdefault("refresh_token", tokens["refresh_token"])
            token.setdefault("id_token", tokens.get("id_token"))
            claims = {}
            if token.get("id_token") and token["id_token"] != tokens.get("id_token"):
                claims = dict(client().parse_id_token(token, nonce=None, leeway=CLOCK_SKEW_SECONDS))
        elif tokens.get("access_token"):
            token, claims = tokens, {}
        else:
            raise ProviderRefused("no token to re-check with; sign in again")
        if current_app.extensions["settings"].oidc_roles_claim not in claims:
            claims = {**claims, **dict(client().userinfo(token=token, timeout=RECHECK_TIMEOUT_SECONDS))}
    except requests.HTTPError as error:
        if error.response is not None and error.response.status_code in (400, 401, 403):
            raise ProviderRefused(f"the provider answered {error.response.status_code}") from None
        raise
    except AuthlibBaseError as error:  # the token endpoint's refusal, e.g. invalid_grant
        raise ProviderRefused(getattr(error, "error", None) or str(error)) from None
    if claims.get("sub") != account.idp_subject:
        raise ProviderRefused("the provider answered for another subject")
    return claims, token
