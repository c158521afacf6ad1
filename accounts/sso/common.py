"""The provider types and the small rules every SSO module shares."""

from __future__ import annotations

from urllib.parse import urlparse

from django.http import HttpRequest

from accounts.models import User
from leanvibe.errors import DomainError
from leanvibe.outbound import MIB

OIDC = "openid_connect"
SAML = "saml"
KIND_FOR_PROVIDER = {OIDC: "oidc", SAML: "saml"}
PROVIDER_FOR_KIND = {"oidc": OIDC, "saml": SAML}
# Discovery documents, key sets, token answers and SAML metadata are small: larger is refused.
FETCH_MAX_BYTES = MIB


def refuse(code: str, detail: str, *, status: int = 400) -> DomainError:
    return DomainError(code, detail, status=status)


def check_url(value: str, name: str) -> str:
    """The form of a URL (http or https, a host). Where the server will fetch it, the outbound
    guard's rules apply as well (``leanvibe.outbound``)."""
    try:
        parsed = urlparse(value)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise refuse("validation_error", f"{name}: enter an http(s) URL.")
    return value


def request_actor(request: HttpRequest | None) -> User | None:
    """The signed-in user of ``request``, the actor an audited change names (audit trail only)."""
    user = getattr(request, "user", None)
    return user if isinstance(user, User) else None
