"""``manage.py agent_task create --tenant <id or subdomain> --title ... --description ...`` queues a
development task; ``manage.py agent_task watch <task id> --tenant ...`` prints its progress bar
and steps until it is done (polling its ``TaskEvent`` rows)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from agents import selectors, services
from agents.models import DevelopmentTask
from leanvibe.errors import DomainError
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_ref

BAR_WIDTH = 30


def progress_bar(percent: int, width: int = BAR_WIDTH) -> str:
    filled = round(width * max(0, min(100, percent)) / 100)
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%"


class Command(BaseCommand):
    help = "Create a development task for an organisation, or watch one until it is done."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Queue a new task")
        create.add_argument("--tenant", required=True, help="Tenant id or subdomain")
        create.add_argument("--title", required=True)
        create.add_argument("--description", required=True)
        create.add_argument("--priority", default=DevelopmentTask.Priority.MEDIUM)
        create.add_argument("--requirement", action="append", default=[], dest="requirements")
        create.add_argument("--project", help="Project id")
        watch = sub.add_parser("watch", help="Print a task's progress until it is done")
        watch.add_argument("task_id")
        watch.add_argument("--tenant", required=True, help="Tenant id or subdomain")
        watch.add_argument("--interval", type=float, default=0.5, help="Seconds between polls")
        watch.add_argument("--timeout", type=float, default=0, help="Give up after this many seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = tenant_get_by_ref(options["tenant"])
        if tenant is None:
            raise CommandError(f"No organisation {options['tenant']!r}")
        with tenant_context(tenant):
            if options["action"] == "create":
                self._create(tenant, options)
            else:
                self._watch(options)

    def _create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        if options["priority"] not in DevelopmentTask.Priority.values:
            raise CommandError(f"--priority must be one of {', '.join(DevelopmentTask.Priority.values)}")
        project = None
        if options["project"]:
            project = selectors.project_get(options["project"])
            if project is None:
                raise CommandError(f"No project {options['project']!r}")
        try:
            task = services.task_create(
                tenant=tenant,
                title=options["title"],
                description=options["description"],
                priority=options["priority"],
                requirements=options["requirements"],
                project=project,
            )
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(self.style.SUCCESS(f"Task {task.id} {task.status}: {task.title}"))
        self.stdout.write(f"Watch it: manage.py agent_task watch {task.id} --tenant {tenant.schema_name}")

    def _watch(self, options: dict[str, Any]) -> None:
        task = selectors.task_get(options["task_id"])
        if task is None:
            raise CommandError(f"No task {options['task_id']!r}")
        deadline = time.monotonic() + options["timeout"] if options["timeout"] else None
        seq, progress, done = 0, task.progress, False
        self.stdout.write(f"{task.title} ({task.id})")
        while not done:
            for event in selectors.task_events_after(task=task, seq=seq):
                seq = event.seq
                if event.type == "progress":
                    progress = int(event.data.get("progress", progress))
                    self.stdout.write(progress_bar(progress))
                elif event.type == "step" and event.data.get("status") == "running":
                    self.stdout.write(
                        f"  > {event.data.get('step', '')} (attempt {event.data.get('attempt', 1)})"
                    )
                elif event.type == "done":
                    done = True
            if done:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError("Timed out before the task was done")
            self.stdout.flush()
            time.sleep(options["interval"])
        task.refresh_from_db()
        line = f"{progress_bar(task.progress)} {task.status}"
        if task.error:
            line += f": {task.error}"
        style = self.style.SUCCESS if task.status == DevelopmentTask.Status.COMPLETED else self.style.ERROR
        self.stdout.write(style(line))
