"""``make run``: migrate, make the demo data, then run web, worker and beat until Ctrl-C."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_otp.plugins.otp_totp.models import TOTPDevice

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

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        self.stdout.write(self.style.MIGRATE_HEADING("Preparing the database"))
        call_command("platform_migrate", stdout=self.stdout, verbosity=1)

        credentials = self._load_credentials()
        staff = self._ensure_staff(credentials)
        demo = None if options["no_demo"] else self._ensure_demo_tenant(credentials)
        self._save_credentials(credentials)
        connection.close()

        processes = self._start(port, options["web_workers"])
        self._print_banner(port, staff, demo)
        code = self._supervise(processes)
        sys.exit(code)

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
                "leanvibe.wsgi:application",
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

    def _print_banner(self, port: int, staff: dict[str, Any], demo: dict[str, Any] | None) -> None:
        base = settings.BASE_DOMAIN
        lines = [
            "",
            self.style.SUCCESS("LeanVibe is running. Press Ctrl-C to stop."),
            f"  Public site     http://{base}:{port}/",
            f"  Admin console   http://{base}:{port}/admin/",
        ]
        if demo:
            lines.append(f"  Demo tenant     http://{demo['domain']}:{port}/")
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
        self.stdout.write("\nStopping web, worker and beat...")
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
