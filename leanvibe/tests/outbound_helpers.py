"""Test servers and probes for the outbound guard (``leanvibe/outbound.py``).

- ``connections_recorded()`` records every ``socket.connect`` and ``socket.getaddrinfo`` the
  current thread makes while it is open, through a ``sys.addaudithook`` hook installed once per
  process and gated by a context variable: proof that a refusal happened before any packet.
- ``loopback_listener()`` is a bare listening socket on a loopback address: anything that
  connected is waiting in its accept queue, so ``connections()`` tells whether anything reached it.
- ``HttpTestServer`` is a threaded HTTP(S) server on a loopback address whose routes are small
  functions, for redirects, oversized bodies and slow answers.

Only loopback addresses are ever listened on or connected to.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# --- recording connection attempts -----------------------------------------------------------

_recording: ContextVar[list[tuple[str, Any]] | None] = ContextVar("outbound_test_recording", default=None)
_hook_installed = False


def _audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("socket.connect", "socket.getaddrinfo"):
        return
    log = _recording.get()
    if log is None:
        return
    if event == "socket.connect":
        log.append(("connect", args[1]))
        _forbid_non_loopback(args[1])
    else:
        log.append(("getaddrinfo", args[0]))


def _forbid_non_loopback(address: Any) -> None:
    """A safety net for the tests themselves: while recording, a connection to anything but a
    loopback address is stopped before the packet leaves (the test then fails loudly)."""
    if not (isinstance(address, tuple) and address and isinstance(address[0], str)):
        return
    try:
        ip = ipaddress.ip_address(address[0].split("%")[0])
    except ValueError:
        return
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if not (mapped or ip).is_loopback:
        raise PermissionError(f"test tried to connect to a non-loopback address: {address!r}")


@dataclass
class Attempts:
    events: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def connects(self) -> list[Any]:
        return [target for kind, target in self.events if kind == "connect"]

    @property
    def lookups(self) -> list[Any]:
        return [host for kind, host in self.events if kind == "getaddrinfo"]


@contextlib.contextmanager
def connections_recorded() -> Iterator[Attempts]:
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit_hook)  # cannot be removed: gated by the context variable
        _hook_installed = True
    attempts = Attempts()
    token = _recording.set(attempts.events)
    try:
        yield attempts
    finally:
        _recording.reset(token)


# --- a bare listener -------------------------------------------------------------------------


class Listener:
    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.host = host
        self.port: int = self.sock.getsockname()[1]

    def connections(self) -> int:
        """How many connections reached the listener so far (each is accepted and closed)."""
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def loopback_listener(host: str = "127.0.0.1") -> Iterator[Listener]:
    listener = Listener(host)
    try:
        yield listener
    finally:
        listener.close()


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- TLS material ----------------------------------------------------------------------------


def write_self_signed_cert(directory: Path, *, dns_names: list[str], ips: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate (also its own CA) for the given names; returns (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else ips[0])])
    now = datetime.datetime.now(datetime.UTC)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# --- a small HTTP(S) server ------------------------------------------------------------------

Route = Callable[[BaseHTTPRequestHandler], None]


class HttpTestServer:
    """Threaded HTTP server on a loopback address; ``routes`` maps a path to a handler function.
    ``requests`` records (method, path, headers) of what arrived; ``aborted`` counts answers the
    client cut off (a broken pipe while the route was still writing)."""

    def __init__(
        self, *, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None, routes: dict[str, Route]
    ) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.aborted = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _serve(self) -> None:
                server.requests.append((self.command, self.path, dict(self.headers.items())))
                route = server.routes.get(self.path.split("?")[0])
                try:
                    if route is None:
                        json_answer(self, 404, b'{"error": "not found"}')
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    server.aborted += 1

            do_GET = _serve
            do_POST = _serve

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family

        self._server = Server((host, 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait_aborted(self, count: int = 1, *, seconds: float = 5.0) -> bool:
        """Whether ``count`` answers were cut off by the client within ``seconds`` (the route's
        thread notices only at its next write)."""
        until = time.monotonic() + seconds
        while self.aborted < count and time.monotonic() < until:
            time.sleep(0.05)
        return self.aborted >= count

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def json_answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def redirect_to(location: str, status: int = 302) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def endless_body(
    *, total: int, declare_length: bool, chunked: bool = False, marker: bytes = b"SECRET-BODY-MARKER "
) -> Route:
    """Writes ``total`` bytes in 64 KiB pieces: with a Content-Length, in chunked encoding, or
    until the connection closes."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/xml")
        if declare_length:
            handler.send_header("Content-Length", str(total))
        elif chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        piece = (marker * (65536 // len(marker) + 1))[:65536]
        sent = 0
        while sent < total:
            handler.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        handler.close_connection = True

    return route


def slow_headers(seconds: float) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        json_answer(handler, 200, b"{}")

    return route


def trickling_body(*, interval: float, pieces: int) -> Route:
    """Headers at once, then one byte every ``interval`` seconds: each read succeeds."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(pieces))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(pieces):
            time.sleep(interval)
            handler.wfile.write(b" ")
            handler.wfile.flush()

    return route
