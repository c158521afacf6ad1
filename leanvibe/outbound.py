"""The one HTTP client for requests the server makes on a tenant's behalf.

A tenant admin chooses URLs the server then fetches (an identity provider's discovery document,
its keys and token endpoint, SAML metadata; later billing and agent backends). Without a guard
that is a request-forgery path into the cluster: cloud metadata, the database, Redis, internal
services. Every such request goes through ``outbound_request``:

- **https only**; plain http too when ``OUTBOUND_ALLOW_PRIVATE`` (development and tests). URLs
  with a user name or password, spaces or control characters are refused.
- **Addresses.** The host is resolved once; if any address it resolves to is loopback,
  private, shared (carrier-grade NAT), link-local, multicast, reserved, unspecified or otherwise
  not globally routable — IPv4-mapped, 6to4 and NAT64 IPv6 forms judged by the IPv4 address they
  carry, decimal/hex/octal/short IPv4 forms by what they resolve to — the request is refused,
  unless ``OUTBOUND_ALLOW_PRIVATE`` or the address is inside ``OUTBOUND_ALLOWED_NETWORKS``.
- **Pinned.** The connection goes to the address that was checked (no second lookup); the
  ``Host`` header, TLS SNI and the certificate check still use the host name.
- **Redirects** (GET and HEAD only, at most ``max_redirects``) are followed here, each hop
  checked like the first; credentials are not carried to another origin. Other methods get the
  3xx answer itself.
- **Bounded.** ``timeout`` (default ``OUTBOUND_TIMEOUT``) bounds the whole exchange — every hop,
  connect, headers and body — with a watchdog that shuts the socket at the deadline. The body is
  streamed and cut at ``max_bytes`` (a declared larger ``Content-Length`` is refused unread);
  compressed answers are neither asked for nor accepted.
- **Errors** are ``DomainError`` subclasses with our own sentences; the exception text of a
  failed fetch is logged, never answered. A refusal is ``OutboundRefused`` (400
  ``outbound_url_refused`` naming the rule) and sends the ``outbound_refused`` signal, which the
  accounts app records as an ``outbound.refused`` audit event (this kernel module imports no app).
- **Streamed answers** (a model server's server-sent events) use ``outbound_stream``: the same
  target rules and pinned connection, no redirects, a timeout up to the headers and then an idle
  timeout per read, the body cut at ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn
from urllib.parse import urlencode, urljoin

import certifi
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import make_headers, parse_url
from urllib3.util.ssl_match_hostname import CertificateError

from leanvibe.errors import DomainError

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = MIB
MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "LeanVibe (+outbound)"
_READ_SIZE = 64 * 1024
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
# urllib3's connect() raises the ssl module's errors as they are (only its pools wrap them).
_TLS_FAILURES = (SSLError, ssl.SSLError, CertificateError)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Sent with ``refusal=<OutboundRefused>`` each time a target is refused (before any connection).
outbound_refused = Signal()


# --- errors ------------------------------------------------------------------------------------


class OutboundError(DomainError):
    """A fetch failed. ``reason`` is our own sentence, safe to show (never the exception text)."""

    def __init__(
        self, reason: str, *, host: str, code: str = "outbound_failed", status: int = 502, **extra: Any
    ) -> None:
        super().__init__(
            code, f"The request to {host or 'the server'} failed: {reason}.", status=status, **extra
        )
        self.reason = reason
        self.host = host


class OutboundRefused(OutboundError):
    """The target breaks a rule; nothing was sent. ``rule`` is a short slug (``loopback``,
    ``private``, ``scheme`` …) that the answer and the audit event carry."""

    def __init__(
        self, reason: str, *, host: str, rule: str, purpose: str = "", scheme: str = "", port: int = 0
    ):
        super().__init__(reason, host=host, code="outbound_url_refused", status=400, rule=rule)
        self.detail = f"This URL is refused: {reason}."
        self.rule = rule
        self.purpose = purpose
        self.scheme = scheme
        self.port = port


class OutboundTimeout(OutboundError):
    def __init__(self, *, host: str) -> None:
        super().__init__("the server took too long to answer", host=host, code="outbound_timeout", status=504)


class OutboundTooLarge(OutboundError):
    def __init__(self, *, host: str, max_bytes: int) -> None:
        super().__init__(
            f"the answer is larger than {_size(max_bytes)}", host=host, code="outbound_response_too_large"
        )
        self.max_bytes = max_bytes


def _size(count: int) -> str:
    if count % MIB == 0:
        return f"{count // MIB} MiB"
    if count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count} bytes"


# --- address rules ----------------------------------------------------------------------------

# Named ranges first (for a precise message), then Python's own classification, then "not global".
_NAMED_RANGES: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str], ...] = tuple(
    (ipaddress.ip_network(cidr), rule, description)
    for cidr, rule, description in (
        ("0.0.0.0/8", "unspecified", "an unspecified (“this network”) address"),
        ("127.0.0.0/8", "loopback", "a loopback address"),
        ("10.0.0.0/8", "private", "a private address"),
        ("172.16.0.0/12", "private", "a private address"),
        ("192.168.0.0/16", "private", "a private address"),
        ("100.64.0.0/10", "shared", "a shared (carrier-grade NAT) address"),
        ("169.254.0.0/16", "link_local", "a link-local address"),
        ("224.0.0.0/4", "multicast", "a multicast address"),
        ("240.0.0.0/4", "reserved", "a reserved address"),
        ("192.0.0.0/24", "special_purpose", "an IETF protocol address that is not publicly routable"),
        ("192.88.99.0/24", "reserved", "a reserved (6to4 relay) address"),
        ("::/128", "unspecified", "an unspecified address"),
        ("::1/128", "loopback", "a loopback address"),
        ("::/96", "reserved", "a reserved (IPv4-compatible) address"),
        ("fc00::/7", "private", "a private (unique local) address"),
        ("fec0::/10", "private", "a private (site-local) address"),
        ("fe80::/10", "link_local", "a link-local address"),
        ("ff00::/8", "multicast", "a multicast address"),
        ("64:ff9b:1::/48", "private", "a private (local NAT64) address"),
        ("100::/64", "reserved", "a reserved (discard-only) address"),
        ("2001::/23", "special_purpose", "an IETF protocol address that is not publicly routable"),
        ("2001:db8::/32", "reserved", "a reserved (documentation) address"),
        ("3fff::/20", "reserved", "a reserved (documentation) address"),
        ("5f00::/16", "reserved", "a reserved (segment routing) address"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class _Finding:
    rule: str
    description: str


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _classify(ip: IPAddress) -> _Finding | None:
    """Why ``ip`` may not be reached, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip if ip.scope_id is None else ipaddress.IPv6Address(str(ip).split("%")[0])
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            found = _classify(embedded)
            return _Finding(found.rule, f"{found.description} inside an IPv6 address") if found else None
    for network, rule, description in _NAMED_RANGES:
        if ip.version == network.version and ip in network:
            return _Finding(rule, description)
    checks = (
        (ip.is_unspecified, "unspecified", "an unspecified address"),
        (ip.is_loopback, "loopback", "a loopback address"),
        (ip.is_link_local, "link_local", "a link-local address"),
        (ip.is_multicast, "multicast", "a multicast address"),
        (ip.is_reserved, "reserved", "a reserved address"),
        (ip.is_private, "private", "a private address"),
        (not ip.is_global, "special_purpose", "a special-purpose address that is not publicly routable"),
    )
    for matched, rule, description in checks:
        if matched:
            return _Finding(rule, description)
    return None


@lru_cache(maxsize=8)
def _parse_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {exc}") from exc


def _allow_listed(ip: IPAddress) -> bool:
    networks = _parse_networks(tuple(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ()) or ()))
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        candidates.append(embedded)
    return any(c.version == n.version and c in n for c in candidates for n in networks)


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host written as a number stands for (``127.1``, ``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``::ffff:127.0.0.1``), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


# --- targets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundTarget:
    """A checked URL: where to connect (``addresses``, empty when not resolved) and what to send."""

    url: str
    scheme: str
    host: str  # ASCII, lower case, no brackets
    port: int
    request_uri: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def _refuse(
    reason: str, *, rule: str, host: str = "", purpose: str = "", scheme: str = "", port: int = 0
) -> NoReturn:
    refusal = OutboundRefused(reason, host=host, rule=rule, purpose=purpose, scheme=scheme, port=port)
    logger.warning("outbound request refused (%s): host=%r rule=%s: %s", purpose or "-", host, rule, reason)
    for receiver, result in outbound_refused.send_robust(sender=OutboundRefused, refusal=refusal):
        if isinstance(result, Exception):
            logger.error("outbound_refused receiver %r failed", receiver, exc_info=result)
    raise refusal


def _target(url: str, *, purpose: str, resolve: bool) -> OutboundTarget:
    allow_private = bool(settings.OUTBOUND_ALLOW_PRIVATE)
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        _refuse(f"a URL of at most {MAX_URL_LENGTH} characters is required", rule="url", purpose=purpose)
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        _refuse("the URL contains spaces or control characters", rule="url", purpose=purpose)
    try:
        parsed = parse_url(url)
    except (LocationParseError, ValueError, UnicodeError):
        _refuse("this is not a valid URL", rule="url", purpose=purpose)
    scheme = (parsed.scheme or "").lower()
    host = (parsed.host or "").strip("[]").lower().rstrip(".")
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed_schemes:
        _refuse(
            "only http and https URLs are allowed" if allow_private else "only https URLs are allowed",
            rule="scheme",
            host=host,
            purpose=purpose,
            scheme=scheme,
        )
    port = parsed.port or (443 if scheme == "https" else 80)
    if parsed.auth is not None:
        _refuse("a URL may not carry a user name or password", rule="credentials", host=host, purpose=purpose)
    if not host or not host.isascii() or "%" in host or not 0 < port < 65536:
        _refuse("the host name or port is not valid", rule="host", host=host, purpose=purpose)
    target = OutboundTarget(
        url=url, scheme=scheme, host=host, port=port, request_uri=parsed.request_uri, addresses=()
    )
    if not resolve:
        return target
    addresses = _resolve(target, purpose=purpose)
    if not allow_private:
        literal = _literal_ip(host)
        for ip in addresses:
            if _allow_listed(ip):
                continue
            finding = _classify(ip)
            if finding is not None:
                subject = f"the address {ip}" if literal is not None else f"{host} resolves to"
                verb = " is" if literal is not None else ""
                _refuse(
                    f"{subject}{verb} {finding.description}",
                    rule=finding.rule,
                    host=host,
                    purpose=purpose,
                    scheme=scheme,
                    port=port,
                )
    return OutboundTarget(
        url=url, scheme=scheme, host=host, port=port, request_uri=parsed.request_uri, addresses=addresses
    )


def _resolve(target: OutboundTarget, *, purpose: str) -> tuple[IPAddress, ...]:
    try:
        infos = socket.getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as exc:
        logger.warning("outbound (%s): %r does not resolve: %s", purpose or "-", target.host, exc)
        raise OutboundError(
            "the host name could not be resolved", host=target.host, code="outbound_host_unresolved"
        ) from exc
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(sockaddr[0])
            if ip not in addresses:
                addresses.append(ip)
    if not addresses:
        raise OutboundError(
            "the host name could not be resolved", host=target.host, code="outbound_host_unresolved"
        )
    return tuple(addresses)


def outbound_url_check(*, url: str, purpose: str) -> OutboundTarget:
    """Apply the rules to ``url`` without sending anything (e.g. when a tenant saves it).

    Resolves the host and checks every address unless ``OUTBOUND_ALLOW_PRIVATE``, when only the
    URL's form is checked. Raises ``OutboundRefused`` (and signals it), or ``OutboundError``
    (``outbound_host_unresolved``) for a name that does not resolve."""
    return _target(url, purpose=purpose, resolve=not settings.OUTBOUND_ALLOW_PRIVATE)


# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    url: str  # after redirects

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not (or is nested absurdly deep)."""
        try:
            return json.loads(self.body)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc

    @property
    def text(self) -> str:
        content_type = self.headers.get("Content-Type", "")
        charset = "utf-8"
        for part in content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class _Deadline:
    """Shuts the connection's socket when the time is up, whatever it is blocked on."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._timer: threading.Timer | None = None

    def remaining(self, host: str) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            self.expired = True
            raise OutboundTimeout(host=host)
        return left

    def arm(self, connection: HTTPConnection, host: str) -> None:
        sock = connection.sock
        if sock is None:
            return

        def expire() -> None:
            self.expired = True
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

        self._timer = threading.Timer(self.remaining(host), expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _connect(target: OutboundTarget, deadline: _Deadline, *, purpose: str) -> HTTPConnection:
    """A connection to the first checked address that answers (never a new lookup)."""
    failure: Exception | None = None
    for ip in target.addresses:
        timeout = deadline.remaining(target.host)
        connection: HTTPConnection
        if target.scheme == "https":
            connection = HTTPSConnection(
                str(ip),
                target.port,
                timeout=timeout,
                cert_reqs="CERT_REQUIRED",
                ca_certs=getattr(settings, "OUTBOUND_CA_BUNDLE", "") or certifi.where(),
                server_hostname=target.host,
                assert_hostname=target.host,
            )
        else:
            connection = HTTPConnection(str(ip), target.port, timeout=timeout)
        try:
            connection.connect()
            return connection
        except (HTTPError, OSError, CertificateError) as exc:
            connection.close()
            logger.warning(
                "outbound (%s): connecting to %s (%s) failed: %s", purpose or "-", target.host, ip, exc
            )
            failure = exc
            if isinstance(exc, _TLS_FAILURES):
                break  # the server answered: its certificate or TLS is the problem, not reachability
    if isinstance(failure, _TLS_FAILURES):
        raise OutboundError(
            "its TLS certificate could not be verified", host=target.host, code="outbound_tls_failed"
        ) from failure
    if isinstance(failure, ConnectTimeoutError | TimeoutError) and not isinstance(
        failure, NewConnectionError
    ):
        raise OutboundTimeout(host=target.host) from failure
    raise OutboundError(
        "the server could not be reached", host=target.host, code="outbound_unreachable"
    ) from failure


def _send(
    connection: HTTPConnection,
    target: OutboundTarget,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    deadline: _Deadline,
) -> BaseHTTPResponse:
    """The request sent and the answer's status and headers read, all before the deadline (the
    caller disarms it)."""
    deadline.arm(connection, target.host)
    connection.request(
        method,
        target.request_uri,
        body=body,
        headers={**headers, "Host": target.host_header},
        preload_content=False,
        decode_content=False,
    )
    connection.timeout = deadline.remaining(target.host)
    return connection.getresponse()


def _refuse_compressed(raw: BaseHTTPResponse, host: str) -> None:
    encoding = raw.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise OutboundError("it answered with a compressed body", host=host, code="outbound_bad_response")


def _exchange_failure(exc: Exception, *, host: str, expired: bool, purpose: str) -> OutboundError:
    """Our error for a failed send or read (the exception's own text is only logged)."""
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        logger.warning("outbound (%s): %s timed out: %s", purpose or "-", host, exc)
        return OutboundTimeout(host=host)
    logger.warning("outbound (%s): exchange with %s failed: %s", purpose or "-", host, exc)
    if expired:
        return OutboundTimeout(host=host)
    return OutboundError("the server's answer could not be read", host=host, code="outbound_bad_response")


def _exchange(
    target: OutboundTarget,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    max_bytes: int,
    deadline: _Deadline,
    purpose: str,
    follow_redirects: bool,
) -> OutboundResponse:
    connection = _connect(target, deadline, purpose=purpose)
    raw: BaseHTTPResponse | None = None
    try:
        raw = _send(connection, target, method=method, headers=headers, body=body, deadline=deadline)
        redirect = raw.status in REDIRECT_STATUSES and bool(raw.headers.get("Location"))
        if method == "HEAD" or (follow_redirects and redirect):
            return OutboundResponse(raw.status, raw.headers, b"", target.url)
        _refuse_compressed(raw, target.host)
        declared = raw.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
            raise OutboundTooLarge(host=target.host, max_bytes=max_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            if connection.sock is not None:
                connection.sock.settimeout(deadline.remaining(target.host))
            chunk = raw.read1(min(_READ_SIZE, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise OutboundTooLarge(host=target.host, max_bytes=max_bytes)
        return OutboundResponse(raw.status, raw.headers, b"".join(chunks), target.url)
    except OutboundError:
        raise
    except (ReadTimeoutError, TimeoutError, HTTPError, OSError, ValueError) as exc:
        raise _exchange_failure(exc, host=target.host, expired=deadline.expired, purpose=purpose) from exc
    finally:
        deadline.disarm()
        # The response holds its own reference to the socket: both must go for it to close now
        # (an oversized answer is cut here, not when the garbage collector gets to it).
        if raw is not None:
            raw.close()
        connection.close()


def outbound_request(
    *,
    method: str,
    url: str,
    purpose: str,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    body: bytes | None = None,
    basic_auth: tuple[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> OutboundResponse:
    """Send one request through the guard and return the whole (capped) answer, whatever its
    status. ``purpose`` names the fetch in logs and audit events (e.g. "OIDC discovery").
    ``form`` is sent url-encoded; ``basic_auth`` as an Authorization header. Raises
    ``OutboundRefused`` (400), ``OutboundTimeout`` (504), ``OutboundTooLarge`` and
    ``OutboundError`` (502)."""
    method = method.upper()
    deadline = _Deadline(float(timeout if timeout is not None else settings.OUTBOUND_TIMEOUT))
    send_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
    if form is not None:
        body = urlencode(form).encode()
        send_headers["Content-Type"] = "application/x-www-form-urlencoded"
    if basic_auth is not None:
        send_headers["Authorization"] = make_headers(basic_auth=f"{basic_auth[0]}:{basic_auth[1]}")[
            "authorization"
        ]
    follow = method in ("GET", "HEAD")
    current = url
    first_origin: tuple[str, str, int] | None = None
    for _hop in range(max_redirects + 1):
        target = _target(current, purpose=purpose, resolve=True)
        first_origin = first_origin or target.origin
        if target.origin != first_origin:
            send_headers = {k: v for k, v in send_headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        response = _exchange(
            target,
            method=method,
            headers=send_headers,
            body=body,
            max_bytes=max_bytes,
            deadline=deadline,
            purpose=purpose,
            follow_redirects=follow,
        )
        location = response.headers.get("Location", "")
        if not (follow and response.status in REDIRECT_STATUSES and location):
            return response
        current = urljoin(current, location)
    raise OutboundError(
        f"it redirected more than {max_redirects} times",
        host=first_origin[1] if first_origin else "",
        code="outbound_too_many_redirects",
    )


# --- streamed answers ---------------------------------------------------------------------------


class OutboundStream:
    """An answer read as it arrives (``outbound_stream``). ``pieces()`` yields the body as the
    server sends it, ``lines()`` line by line; each read may wait ``idle_timeout`` seconds, and
    the whole body is cut at ``max_bytes``."""

    def __init__(
        self,
        *,
        raw: BaseHTTPResponse,
        connection: HTTPConnection,
        target: OutboundTarget,
        idle_timeout: float,
        max_bytes: int,
        purpose: str,
    ) -> None:
        self.status = raw.status
        self.headers: Mapping[str, str] = raw.headers
        self.url = target.url
        self._raw = raw
        self._connection = connection
        self._host = target.host
        self._idle_timeout = idle_timeout
        self._max_bytes = max_bytes
        self._purpose = purpose
        self._size = 0

    def pieces(self) -> Iterator[bytes]:
        while True:
            if self._connection.sock is not None:
                self._connection.sock.settimeout(self._idle_timeout)
            try:
                piece = self._raw.read1(_READ_SIZE)
            except (ReadTimeoutError, TimeoutError, HTTPError, OSError, ValueError) as exc:
                raise _exchange_failure(exc, host=self._host, expired=False, purpose=self._purpose) from exc
            if not piece:
                return
            self._size += len(piece)
            if self._size > self._max_bytes:
                raise OutboundTooLarge(host=self._host, max_bytes=self._max_bytes)
            yield piece

    def lines(self) -> Iterator[bytes]:
        """The body split at ``\\n`` (the line ending removed, a ``\\r`` before it too)."""
        pending = b""
        for piece in self.pieces():
            pending += piece
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.removesuffix(b"\r")
        if pending:
            yield pending.removesuffix(b"\r")

    def read(self) -> bytes:
        return b"".join(self.pieces())


@contextlib.contextmanager
def outbound_stream(
    *,
    method: str,
    url: str,
    purpose: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    max_bytes: int = 16 * MIB,
) -> Iterator[OutboundStream]:
    """Send one request through the guard (the same rules as ``outbound_request``) and read its
    answer as it arrives: for streamed answers (server-sent events) that last longer than any
    sensible whole-exchange timeout. ``timeout`` (default ``OUTBOUND_TIMEOUT``) bounds the
    connection and the answer's headers; then each read may wait ``idle_timeout`` seconds (default
    ``timeout``). Redirects are not followed (the 3xx answer is returned). The connection closes
    when the block ends."""
    method = method.upper()
    seconds = float(timeout if timeout is not None else settings.OUTBOUND_TIMEOUT)
    deadline = _Deadline(seconds)
    send_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
    target = _target(url, purpose=purpose, resolve=True)
    connection = _connect(target, deadline, purpose=purpose)
    raw: BaseHTTPResponse | None = None
    try:
        try:
            raw = _send(connection, target, method=method, headers=send_headers, body=body, deadline=deadline)
        except (ReadTimeoutError, TimeoutError, HTTPError, OSError, ValueError) as exc:
            raise _exchange_failure(exc, host=target.host, expired=deadline.expired, purpose=purpose) from exc
        finally:
            deadline.disarm()
        _refuse_compressed(raw, target.host)
        yield OutboundStream(
            raw=raw,
            connection=connection,
            target=target,
            idle_timeout=float(idle_timeout if idle_timeout is not None else seconds),
            max_bytes=max_bytes,
            purpose=purpose,
        )
    finally:
        if raw is not None:
            raw.close()
        connection.close()
