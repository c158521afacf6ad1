"""Fixtures: a fresh local Stripe per test, the global ``stripe`` module pointed at it, and a
webhook receiver on 127.0.0.1 that records what it gets (and can fail on purpose)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from billing.stripe_local import StripeLocal
from billing.stripe_local.testing import pointed_at

API_KEY = "sk_test_local_123"


@pytest.fixture
def local() -> Iterator[StripeLocal]:
    with StripeLocal(retry_delays=(0.1, 0.2, 0.3)) as server, pointed_at(server, api_key=API_KEY):
        yield server


class Receiver:
    """A webhook endpoint: records each POST (headers, body); answers ``fail_first`` 500s first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    failing = receiver.fail_first > 0
                    if failing:
                        receiver.fail_first -= 1
                    receiver.requests.append(
                        {
                            "body": body.decode(),
                            "signature": self.headers.get("Stripe-Signature"),
                            "failed": failing,
                        }
                    )
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
