"""Our OpenID Connect client, used by the web flow and the API alike.

It is ours rather than allauth's: allauth sends no ``nonce`` and skips the ID token's signature
when the token came straight from the token endpoint. Here every sign-in, web or API, uses state
+ nonce + PKCE (S256) kept server-side in the tenant-namespaced cache, and the ID token is
always verified against the issuer's JWKS (signature, ``iss``, ``aud``, ``exp``, ``iat``,
``nonce``). Every fetch goes through the outbound guard (``leanvibe.outbound``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.core.cache import cache

from accounts.mfa_adapter import decrypt_text
from accounts.sso.common import FETCH_MAX_BYTES, OIDC, check_url, refuse
from accounts.sso.providers import policy_of, sso_provider_get
from accounts.sso.signin import SsoIdentity
from leanvibe.outbound import OutboundError, OutboundRefused, OutboundTooLarge, outbound_request

# Asymmetric algorithms only: "none" and HMAC (keyed with the public client secret) are refused.
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
DISCOVERY_CACHE_SECONDS = 3600
# OIDC ``amr`` values (RFC 8176) that mean a second factor was used at the IdP.
MFA_AMR_VALUES = frozenset({"mfa", "otp", "hwk"})


def amr_has_mfa(amr: Any) -> bool:
    values = amr if isinstance(amr, list) else [amr]
    return any(isinstance(v, str) and v.lower() in MFA_AMR_VALUES for v in values)


def _http_json(
    method: str,
    url: str,
    *,
    purpose: str,
    form: dict[str, str] | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON exchange with an identity provider, through the outbound guard (checked at each
    fetch, 1 MiB at most). A refused URL stays the guard's 400 ``outbound_url_refused``."""
    try:
        response = outbound_request(
            method=method,
            url=url,
            purpose=purpose,
            form=form,
            basic_auth=basic_auth,
            headers={"Accept": "application/json"},
            max_bytes=FETCH_MAX_BYTES,
        )
    except OutboundRefused:
        raise
    except OutboundTooLarge as exc:
        raise refuse(
            "sso_provider_error", f"The identity provider's answer was refused: {exc.reason}.", status=502
        ) from exc
    except OutboundError as exc:
        raise refuse(
            "sso_provider_unreachable",
            f"The identity provider could not be reached: {exc.reason}.",
            status=502,
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise refuse(
            "sso_provider_error", "The identity provider answered with something other than JSON.", status=502
        )
    if response.status >= 400:
        error = str(body.get("error_description") or body.get("error") or response.status)[:200]
        raise refuse(
            "sso_token_exchange_failed", f"The identity provider refused the sign-in: {error}.", status=401
        )
    return body


def oidc_discovery(app: SocialApp) -> dict[str, Any]:
    url = app.settings.get("server_url", "")
    if "/.well-known/" not in url:
        url = url.rstrip("/") + "/.well-known/openid-configuration"
    key = "sso:oidc:discovery:" + hashlib.sha256(url.encode()).hexdigest()
    config = cache.get(key)
    if config is None:
        config = _http_json("GET", url, purpose="OIDC discovery")
        for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(config.get(name), str):
                raise refuse(
                    "sso_provider_error", f"The provider's discovery document lacks {name}.", status=502
                )
        cache.set(key, config, DISCOVERY_CACHE_SECONDS)
    return config


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _state_key(state: str) -> str:
    return "sso:oidc:state:" + hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class OidcStart:
    authorization_url: str
    state: str
    expires_in: int


def oidc_begin(*, app: SocialApp, redirect_uri: str, flow: str, next_url: str = "") -> OidcStart:
    """Start an authorization-code sign-in: state, nonce and PKCE verifier kept server-side."""
    if app.provider != OIDC:
        raise refuse("sso_wrong_provider_type", "This provider is not an OpenID Connect provider.")
    check_url(redirect_uri, "redirect_uri")
    config = oidc_discovery(app)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = _pkce_pair()
    ttl = settings.SSO_STATE_TTL
    cache.set(
        _state_key(state),
        {
            "provider": app.provider_id,
            "nonce": nonce,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "flow": flow,
            "next": next_url,
        },
        ttl,
    )
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    endpoint = config["authorization_endpoint"]
    separator = "&" if "?" in endpoint else "?"
    return OidcStart(f"{endpoint}{separator}{urlencode(params)}", state, ttl)


def oidc_state_take(*, state: str, flow: str) -> dict[str, Any]:
    """Consume a stashed state once. Unknown, expired, used, or from another flow: refused."""
    if not isinstance(state, str) or not 16 <= len(state) <= 200:
        raise refuse("sso_state_invalid", "The sign-in state is unknown or expired: start again.")
    key = _state_key(state)
    stashed = cache.get(key)
    # delete() answers whether this call removed the key: of two concurrent callbacks, one wins.
    if stashed is None or not cache.delete(key) or stashed.get("flow") != flow:
        raise refuse("sso_state_invalid", "The sign-in state is unknown or expired: start again.")
    return dict(stashed)


def _verify_id_token(*, app: SocialApp, config: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise refuse("sso_id_token_invalid", "The ID token is malformed.", status=401) from exc
    algorithm = header.get("alg")
    allowed = [
        a
        for a in ID_TOKEN_ALGORITHMS
        if a in config.get("id_token_signing_alg_values_supported", ID_TOKEN_ALGORITHMS)
    ]
    if algorithm not in allowed:
        raise refuse(
            "sso_id_token_invalid", "The ID token is not signed with an accepted algorithm.", status=401
        )
    jwks = _http_json("GET", config["jwks_uri"], purpose="OIDC JWKS")
    keys = [
        k
        for k in jwks.get("keys", [])
        if isinstance(k, dict) and (header.get("kid") is None or k.get("kid") == header.get("kid"))
    ]
    if not keys:
        raise refuse(
            "sso_id_token_invalid", "The ID token's signing key is not among the provider's keys.", status=401
        )
    try:
        key = jwt.PyJWK(keys[0], algorithm=algorithm)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key.key,
            algorithms=[algorithm],
            audience=app.client_id,
            issuer=config["issuer"],
            leeway=settings.SSO_CLOCK_SKEW,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise refuse("sso_id_token_invalid", f"The ID token was refused: {exc}.", status=401) from exc
    azp = claims.get("azp")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != app.client_id:
        raise refuse("sso_id_token_invalid", "The ID token was issued to another client.", status=401)
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise refuse(
            "sso_nonce_mismatch", "The ID token does not answer this sign-in (nonce mismatch).", status=401
        )
    return claims


def _claim_values(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),) if value not in (None, "") else ()


def oidc_identity(app: SocialApp, claims: dict[str, Any]) -> SsoIdentity:
    policy = policy_of(app)
    verified = claims.get("email_verified")
    return SsoIdentity(
        uid=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        email_verified=verified is True or str(verified).lower() == "true",
        name=str(claims.get(policy["name_claim"] or "name") or ""),
        role_values=_claim_values(claims.get(policy["role_claim"])) if policy["role_claim"] else (),
        extra={k: claims[k] for k in ("iss", "sub", "email", "name", "amr") if k in claims},
        idp_mfa=amr_has_mfa(claims.get("amr")),
    )


def oidc_complete(*, state: str, code: str, flow: str) -> tuple[SocialApp, dict[str, Any], dict[str, Any]]:
    """Exchange ``code`` at the provider's token endpoint and verify the ID token. Returns the
    app, the verified claims and the stashed state."""
    stashed = oidc_state_take(state=state, flow=flow)
    app = sso_provider_get(stashed["provider"])
    if not isinstance(code, str) or not code or len(code) > 2048:
        raise refuse("validation_error", "code: this field is required.")
    config = oidc_discovery(app)
    secret = decrypt_text(app.secret) if app.secret else ""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": stashed["redirect_uri"],
        "code_verifier": stashed["code_verifier"],
        "client_id": app.client_id,
    }
    methods = config.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth = None
    if "client_secret_post" in methods:
        form["client_secret"] = secret
    else:
        auth = (app.client_id, secret)
    tokens = _http_json(
        "POST", config["token_endpoint"], purpose="OIDC token endpoint", form=form, basic_auth=auth
    )
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise refuse("sso_id_token_invalid", "The identity provider returned no ID token.", status=401)
    claims = _verify_id_token(app=app, config=config, id_token=id_token, nonce=stashed["nonce"])
    return app, claims, stashed
