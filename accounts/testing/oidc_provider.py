"""A small OpenID Connect provider for tests and local demos, run in a thread on 127.0.0.1.

It serves discovery, JWKS (an RSA key generated at start), an authorize endpoint that approves
the configured user at once, a token endpoint that checks the client's secret, the code's
redirect URI and PKCE (S256) and issues an ID token signed with its key, carrying the nonce it
was given, and a userinfo endpoint. Knobs let tests play a misbehaving or hostile provider:
``id_token_overrides`` (claims replaced in the next ID tokens, e.g. another ``nonce`` or
``aud``) and ``sign_with_foreign_key``.

    with OidcTestProvider(client_id="leanvibe", client_secret="s3cret") as idp:
        idp.user = {"sub": "u1", "email": "ada@acme.test", "email_verified": True}
        idp.issuer  # "http://127.0.0.1:<port>"
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcTestProvider:
    def __init__(self, *, client_id: str = "leanvibe-test", client_secret: str = "test-secret") -> None:  # noqa: S107
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = _new_key()
        self.kid = secrets.token_hex(8)
        self.user: dict[str, Any] = {"sub": "user-1", "email": "user@example.test", "email_verified": True}
        self.id_token_overrides: dict[str, Any] = {}
        self.sign_with_foreign_key = False
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> OidcTestProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                provider._handle(self, "GET")

            def do_POST(self) -> None:
                provider._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> OidcTestProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        if self._server is None:
            raise RuntimeError("start() the provider first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- protocol -----------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}

    def authorize(self, query: dict[str, str]) -> str:
        """Approve the configured user; return where the browser is sent next."""
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            refusal = {"error": "unauthorized_client", "state": query.get("state", "")}
            return f"{redirect_uri}?{urlencode(refusal)}"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return (
                f"{redirect_uri}?{urlencode({'error': 'invalid_request', 'state': query.get('state', '')})}"
            )
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "redirect_uri": redirect_uri,
            "nonce": query.get("nonce"),
            "code_challenge": query["code_challenge"],
            "claims": dict(self.user),
            "used": False,
        }
        return f"{redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"

    def id_token(self, claims: dict[str, Any], nonce: str | None) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(self.id_token_overrides)
        payload = {k: v for k, v in payload.items() if v is not None}
        key = _new_key() if self.sign_with_foreign_key else self.key
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": self.kid})

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(dict(form))
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = self.codes.get(form.get("code", ""))
        if form.get("grant_type") != "authorization_code" or grant is None or grant["used"]:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        grant["used"] = True
        if grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != grant["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        access = secrets.token_urlsafe(24)
        self.codes[access] = {"userinfo": grant["claims"], "used": True}
        return 200, {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant["claims"], grant["nonce"]),
        }

    # --- HTTP ---------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if method == "GET" and url.path == "/.well-known/openid-configuration":
            return self._json(handler, 200, self.discovery())
        if method == "GET" and url.path == "/jwks":
            return self._json(handler, 200, self.jwks())
        if method == "GET" and url.path == "/authorize":
            handler.send_response(302)
            handler.send_header("Location", self.authorize(query))
            handler.end_headers()
            return None
        if method == "POST" and url.path == "/token":
            length = int(handler.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
            basic = None
            auth = handler.headers.get("Authorization", "")
            if auth.lower().startswith("basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                basic = (user, password)
            status, body = self.token(form, basic)
            return self._json(handler, status, body)
        if method == "GET" and url.path == "/userinfo":
            bearer = handler.headers.get("Authorization", "")[7:]
            grant = self.codes.get(bearer)
            if grant is None or "userinfo" not in grant:
                return self._json(handler, 401, {"error": "invalid_token"})
            return self._json(handler, 200, grant["userinfo"])
        return self._json(handler, 404, {"error": "not_found"})

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
