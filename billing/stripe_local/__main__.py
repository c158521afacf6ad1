"""``python -m billing.stripe_local --port 12111 [--state .data/stripe_local.json]``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from .server import StripeLocal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Stripe-compatible server (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state", default=None, help="JSON file the state is saved to and loaded from")
    parser.add_argument("--api-key", default=None, help="accept only this secret key (default: any sk_test_)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with StripeLocal(port=args.port, state_path=args.state, api_key=args.api_key, tick_interval=30) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
