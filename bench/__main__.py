"""``python -m bench``: provisioning, sign-ins, routing, metering, webhooks, migrations, agents, load.

The databases (``BENCH_DATABASE``, default ``leanvibe_bench``, and ``<that>_*`` for the routing
runs) live on the same PostgreSQL server as the project's (``DATABASE_URL``, or in development
the embedded server when it is unset; Redis likewise). Each is created at the start, migrated as
a deploy would (public schema and tenant template), and dropped at the end. Redis keys and
Celery messages go under a private prefix and queue, removed at the end too. The development
database is never opened.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from leanvibe.environment import start_embedded_services

DEFAULT_BENCH_DATABASE = "leanvibe_bench"


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[
            "provisioning",
            "signins",
            "routing",
            "metering",
            "webhooks",
            "migrations",
            "agents",
            "load",
        ],
        help="Run only these benchmarks (default: all eight).",
    )
    parser.add_argument("--strict", action="store_true", help="Exit non-zero when a target fails.")
    parser.add_argument("--migrations", type=int, default=3, help="Tenants made by running migrations.")
    parser.add_argument("--clones", type=int, default=20, help="Samples of each clone/pool/provision step.")
    parser.add_argument(
        "--signin-windows", type=int, default=4, help="Timed windows per hasher in the sign-in benchmark."
    )
    parser.add_argument(
        "--signin-seconds", type=float, default=5.0, help="Length of each sign-in window, in seconds."
    )
    parser.add_argument("--base-tenants", type=int, default=10, help="Tenants in the small routing database.")
    parser.add_argument("--tenants", type=int, default=500, help="Tenants in the large routing database.")
    parser.add_argument("--requests", type=int, default=300, help="Timed requests per database and run.")
    parser.add_argument("--warmup", type=int, default=50, help="Untimed requests before each run.")
    parser.add_argument(
        "--server",
        choices=["http", "inprocess", "both"],
        default="both",
        help="Time requests over HTTP against gunicorn, through django.test.Client, or both.",
    )
    parser.add_argument(
        "--metering-seconds", type=float, default=5.0, help="Length of the metering throughput window."
    )
    parser.add_argument(
        "--metering-requests", type=int, default=600, help="Timed API requests each way (counting on, off)."
    )
    parser.add_argument(
        "--webhook-events",
        type=int,
        default=200,
        help="Unique Stripe events delivered to /stripe/webhook/ (duplicates come on top).",
    )
    parser.add_argument(
        "--webhook-tenants", type=int, default=10, help="Tenants whose subscriptions the events are about."
    )
    parser.add_argument(
        "--webhook-duplicates",
        type=float,
        default=0.25,
        help="Share of the deliveries that are exact duplicates of earlier events (0 to 0.9).",
    )
    parser.add_argument(
        "--agent-tasks",
        type=int,
        default=8,
        help="Timed development tasks through the pipeline (tiny model).",
    )
    parser.add_argument(
        "--agent-runs",
        type=int,
        default=2,
        help="Generations per backend in the tokens/s comparison (SmolLM2).",
    )
    parser.add_argument(
        "--agent-max-tokens",
        type=int,
        default=32,
        help="Tokens each generation of the tokens/s comparison writes.",
    )
    parser.add_argument(
        "--migrate-schemas",
        type=int,
        default=1000,
        help="Tenant schemas (clones of the template) the no-op migrate runs over.",
    )
    parser.add_argument(
        "--migrate-sample",
        type=int,
        default=50,
        help="Schemas the stock migrate_schemas is timed on (scaled to all of them).",
    )
    parser.add_argument(
        "--load-tenants", type=int, default=50, help="Tenants (4 users each) sending the load mix."
    )
    parser.add_argument(
        "--load-seconds", type=float, default=60.0, help="Length of the load mix, in seconds."
    )
    parser.add_argument(
        "--load-concurrency",
        type=int,
        default=4,
        help="Requests in flight during the load mix (4: two per gunicorn worker, so neither waits).",
    )
    parser.add_argument("--keep-databases", action="store_true", help="Leave the bench databases behind.")
    return parser.parse_args(argv)


def _clean_redis(prefix: str, queue: str) -> None:
    from leanvibe import redis as lv_redis

    client = lv_redis.client()
    keys = list(client.scan_iter(f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    # kombu keeps a queue's messages in a list named after it (deleted above, the queue name
    # contains the prefix) and its binding as a member of a shared set: remove only ours.
    for binding in client.scan_iter("_kombu.binding.*", count=1000):
        for member in client.smembers(binding):
            text = member.decode(errors="replace") if isinstance(member, bytes) else str(member)
            if text.endswith(queue):
                client.srem(binding, member)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    # A plain kill still runs the clean-up below (databases dropped, gunicorn stopped).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.base_tenants < 1 or args.tenants <= args.base_tenants:
        raise SystemExit("--tenants must be larger than --base-tenants (>= 1)")
    if args.agent_tasks < 1 or args.agent_runs < 1 or args.agent_max_tokens < 2:
        raise SystemExit("--agent-tasks and --agent-runs must be >= 1, --agent-max-tokens >= 2")
    if args.webhook_events < 1 or args.webhook_tenants < 1 or not 0 <= args.webhook_duplicates <= 0.9:
        raise SystemExit("--webhook-events and --webhook-tenants must be >= 1, --webhook-duplicates 0 to 0.9")
    if args.load_tenants < 1 or args.load_seconds <= 0 or args.load_concurrency < 1:
        raise SystemExit("--load-tenants and --load-concurrency must be >= 1, --load-seconds > 0")
    if args.migrate_schemas < 1 or not 1 <= args.migrate_sample <= args.migrate_schemas:
        raise SystemExit("--migrate-schemas must be >= 1, --migrate-sample 1 to --migrate-schemas")
    name = os.environ.get("BENCH_DATABASE", DEFAULT_BENCH_DATABASE)
    # In development, embedded PostgreSQL and Redis for unset DATABASE_URL / REDIS_URL (exported:
    # the routing benchmark's worker processes and gunicorn inherit them).
    start_embedded_services()
    project_url = os.environ.get("DATABASE_URL")
    if not project_url or not os.environ.get("REDIS_URL"):
        raise SystemExit("python -m bench needs DATABASE_URL and REDIS_URL (or LEANVIBE_ENV=development).")

    from bench import Databases, Verdict, print_verdicts

    databases = Databases(project_url, name)
    started = time.perf_counter()
    print(f"LeanVibe benchmarks: databases {name}* (created now, dropped at the end)", flush=True)
    # Before Django reads the settings: this process works in the bench database only.
    os.environ["DATABASE_URL"] = databases.create(name)
    os.environ["CACHE_KEY_PREFIX"] = f"leanvibe-bench-{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leanvibe.settings")

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from leanvibe.celery import app as celery_app

    # Tasks queued by provisioning (emails, pool refill) go to a queue no worker reads.
    queue = f"leanvibe-bench-{name}"
    celery_app.conf.task_default_queue = queue
    # Routed tasks too (the agents' runs go to AGENTS_CELERY_QUEUE, which real workers read).
    celery_app.conf.task_routes = {name: {"queue": queue} for name in settings.CELERY_TASK_ROUTES}

    verdicts: list[Verdict] = []
    try:
        print("\n== setup: migrate the public schema and the tenant template ==", flush=True)
        t0 = time.perf_counter()
        call_command("platform_migrate", no_pool=True, verbosity=1)
        print(f"  setup took {time.perf_counter() - t0:.1f} s", flush=True)

        if args.only is None or "provisioning" in args.only:
            from bench import provisioning

            verdicts += provisioning.run(
                migrations=args.migrations, samples=args.clones, hasher=settings.PASSWORD_HASHERS[0]
            )
        if args.only is None or "signins" in args.only:
            from bench import signins

            verdicts += signins.run(windows=args.signin_windows, seconds=args.signin_seconds)
        if args.only is None or "routing" in args.only:
            from bench import routing

            verdicts += routing.run(
                databases=databases,
                queue=queue,
                base_tenants=args.base_tenants,
                tenants=args.tenants,
                requests=args.requests,
                warmup=args.warmup,
                server=args.server,
            )
        if args.only is None or "metering" in args.only:
            from bench import metering

            verdicts += metering.run(seconds=args.metering_seconds, requests=args.metering_requests)
        if args.only is None or "webhooks" in args.only:
            from bench import webhooks

            verdicts += webhooks.run(
                queue=queue,
                events=args.webhook_events,
                tenants=args.webhook_tenants,
                duplicate_share=args.webhook_duplicates,
            )
        if args.only is None or "migrations" in args.only:
            from bench import migrations

            verdicts += migrations.run(schemas=args.migrate_schemas, sample=args.migrate_sample)
        if args.only is None or "agents" in args.only:
            from bench import agents

            verdicts += agents.run(
                tasks=args.agent_tasks, runs=args.agent_runs, max_tokens=args.agent_max_tokens
            )
        if args.only is None or "load" in args.only:
            from bench import load

            verdicts += load.run(
                queue=queue,
                tenants=args.load_tenants,
                seconds=args.load_seconds,
                concurrency=args.load_concurrency,
            )
    finally:
        connections.close_all()
        _clean_redis(settings.CACHE_KEY_PREFIX, queue)
        if args.keep_databases:
            print(f"\nDatabases kept (--keep-databases): {', '.join(databases.created)}")
        else:
            print(
                f"\nDropping {', '.join(databases.created)} (can take a minute or two)",
                flush=True,
            )
            t0 = time.perf_counter()
            dropped = databases.drop_all()
            print(f"  dropped {len(dropped)} database(s) in {time.perf_counter() - t0:.0f} s", flush=True)

    print(f"\n== summary ({time.perf_counter() - started:.0f} s) ==")
    print_verdicts(verdicts)
    failed = any(not verdict.passed for verdict in verdicts)
    if failed and args.strict:
        return 1
    if failed:
        print("  (exit code 0 all the same: pass --strict to fail the run on a missed target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
