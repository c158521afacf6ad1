"""``StripeLocal``: the local Stripe-compatible HTTP server, in a thread on 127.0.0.1.

    with StripeLocal(retry_delays=(0.2, 0.5, 1)) as s:
        stripe.api_key = "sk_test_local"
        stripe.api_base = s.url
        stripe.meter_events_api_base = s.url
        ...
        s.delivery.wait_idle(5)
        assert all(r.ok for r in s.deliveries)

The real ``stripe`` library talks to it over HTTP: form-encoded v1 bodies, JSON v2 bodies,
``Idempotency-Key`` replays, Stripe's error format and status codes.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import pages
from .backend import Backend
from .delivery import Delivery, DeliveryRecord
from .errors import ApiError
from .forms import decode_body, decode_form
from .store import API_VERSION

_CHECKOUT = re.compile(r"^/checkout/(cs_[A-Za-z0-9_]+)$")
_PORTAL = re.compile(r"^/portal/(bps_[A-Za-z0-9]+)$")
_INVOICE = re.compile(r"^/invoice/(in_[A-Za-z0-9]+)(/pdf)?$")


class StripeLocal:
    def __init__(
        self,
        *,
        port: int = 0,
        api_key: str | None = None,
        state_path: str | Path | None = None,
        webhook_tolerance: int = 300,
        retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0),
        payment_retry_days: tuple[int, ...] = (3, 5, 7),
        after_final_payment_failure: str = "canceled",
        upcoming_days: int = 3,
        tick_interval: float | None = None,
        strict_params: bool = True,
    ) -> None:
        """``webhook_tolerance`` is the signature age receivers should accept (informative here);
        ``retry_delays`` the webhook retry backoff in seconds; ``payment_retry_days`` the days
        after the first failed payment when Stripe retries; ``after_final_payment_failure`` is
        ``"canceled"`` or ``"unpaid"``; ``upcoming_days`` how long before a renewal
        ``invoice.upcoming`` is sent (0: never); ``tick_interval`` how often (seconds) work due in
        real time (renewals, retries of customers without a test clock) is processed (None:
        only when ``run_due()`` is called); ``strict_params`` refuses parameters the pinned API
        version does not know (400 ``parameter_unknown``), as Stripe does."""
        self.port = port
        self.webhook_tolerance = webhook_tolerance
        self.delivery = Delivery(retry_delays=retry_delays)
        #: Every API request served, as ``(method, path)``, in order (tests count re-reads).
        self.api_requests: list[tuple[str, str]] = []
        self.backend = Backend(
            api_key=api_key,
            state_path=Path(state_path) if state_path else None,
            retry_days=payment_retry_days,
            after_final_failure=after_final_payment_failure,
            on_event=self.delivery.enqueue,
            upcoming_days=upcoming_days,
            strict_params=strict_params,
        )
        self.tick_interval = tick_interval
        self._ticking = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> StripeLocal:
        local = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in separate writes; with Nagle on, each keep-alive answer
            # waits for the client's delayed ACK (~40 ms). Off, an API call takes ~1 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                local._handle(self, "GET")

            def do_POST(self) -> None:
                local._handle(self, "POST")

            def do_DELETE(self) -> None:
                local._handle(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.backend.rebase_urls(self.url)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-local",
            daemon=True,
        )
        self._thread.start()
        if self.tick_interval:
            threading.Thread(target=self._tick, name="stripe-local-clock", daemon=True).start()
        return self

    def _tick(self) -> None:
        while not self._ticking.wait(self.tick_interval):
            try:
                self.backend.run_due()
            except Exception:  # a bug in one round must not stop the clock for good
                traceback.print_exc()

    def run_due(self) -> int:
        """Process renewals, trial ends and payment retries due now in real time."""
        return self.backend.run_due()

    def resend(self, event_id: str) -> None:
        """Deliver an event again to the endpoints it matches (Stripe's dashboard "Resend")."""
        with self.backend.lock:
            event = self.backend._get("event", event_id)
            endpoints = [
                e | {"secret": e["secret"]}
                for e in self.backend._all("webhook_endpoint")
                if e["status"] == "enabled"
                and ("*" in e["enabled_events"] or event["type"] in e["enabled_events"])
            ]
            self.delivery.enqueue(self.backend.render(event), endpoints)

    def stop(self) -> None:
        self._ticking.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.delivery.stop()

    def __enter__(self) -> StripeLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def deliveries(self) -> list[DeliveryRecord]:
        return list(self.delivery.records)

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Every event so far, oldest first (a test shortcut past the API's pagination)."""
        with self.backend.lock:
            events = sorted(self.backend._all("event"), key=lambda e: e["_seq"])
            return [self.backend.render(e) for e in events if type_ is None or e["type"] == type_]

    def configure_stripe(self, api_key: str = "sk_test_local") -> None:
        """Point the global ``stripe`` module at this server (tests; ``make run`` sets env)."""
        import stripe

        stripe.api_key = api_key
        stripe.api_base = self.url
        stripe.meter_events_api_base = self.url
        stripe.upload_api_base = self.url
        stripe.connect_api_base = self.url

    # --- HTTP ---------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if path.startswith(("/v1/", "/v2/")):
            self.api_requests.append((method, path))  # list.append is atomic across threads
            self._api(h, method, path, parts.query, raw)
            return
        page = self._page(method, path, raw)
        status, headers, text = page
        headers = {"Content-Type": "text/html; charset=utf-8"} | headers
        self._send(h, status, text.encode("latin-1" if text.startswith("%PDF") else "utf-8"), headers)

    def _page(self, method: str, path: str, raw: bytes) -> pages.Page:
        match = _CHECKOUT.match(path)
        if match:
            if method == "POST":
                return pages.checkout_submit(self.backend, match.group(1), raw)
            return pages.checkout_page(self.backend, match.group(1))
        match = _PORTAL.match(path)
        if match:
            if method == "POST":
                return pages.portal_submit(self.backend, match.group(1), raw)
            return pages.portal_page(self.backend, match.group(1))
        match = _INVOICE.match(path)
        if match and method == "GET":
            return pages.invoice_page(self.backend, match.group(1), pdf=bool(match.group(2)))
        if path == "/" and method == "GET":
            return 200, {}, "<!doctype html><title>Local Stripe</title><p>Local Stripe stand-in.</p>"
        return 404, {}, "<!doctype html><title>Not found</title><p>Not found.</p>"

    def _api(self, h: BaseHTTPRequestHandler, method: str, path: str, query: str, raw: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Version": h.headers.get("Stripe-Version") or API_VERSION,
        }
        try:
            self.backend.check_auth(h.headers.get("Authorization", ""))
            params = decode_form(query) if query else {}
            params.update(decode_body(raw, h.headers.get("Content-Type", "")))
        except ApiError as exc:
            self._send(h, exc.status, json.dumps(exc.body()).encode(), headers)
            return
        except ValueError:
            error = ApiError(400, "Invalid request body.")
            self._send(h, 400, json.dumps(error.body()).encode(), headers)
            return
        status, body, extra = self.backend.handle(
            method, path, params, idempotency_key=h.headers.get("Idempotency-Key") or None
        )
        self._send(h, status, json.dumps(body, indent=2).encode(), headers | extra)
