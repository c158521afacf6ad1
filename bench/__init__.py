"""LeanVibe benchmarks (``make bench``): tenant provisioning and request routing.

Run ``python -m bench --help``. Each benchmark works in a database of its own (created and
dropped by ``bench.__main__``), so the development data is never touched.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from leanvibe.serving import server_process

BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Samples:
    """Wall-clock durations of one measured operation, in seconds."""

    label: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    @property
    def n(self) -> int:
        return len(self.values)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (q=0.5 is the median)."""
        if not self.values:
            return float("nan")
        ordered = sorted(self.values)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def p90(self) -> float:
        return self.quantile(0.9)

    @property
    def minimum(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def maximum(self) -> float:
        return max(self.values) if self.values else float("nan")


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    detail: str


def to_public() -> None:
    """Put this process's connection on the public schema (django-tenants' backend method)."""
    from django.db import connection

    connection.set_schema_to_public()  # type: ignore[attr-defined]


@contextmanager
def timed(samples: Samples) -> Iterator[None]:
    start = time.perf_counter()
    yield
    samples.add(time.perf_counter() - start)


def progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


def progress_counter(label: str, total: int, every: int | None = None) -> Callable[[int], None]:
    """Returns a callback printing ``label i/total`` (with rate) every ``every`` items."""
    started = time.perf_counter()
    step = every or max(1, total // 10)

    def report(done: int) -> None:
        if done == total or done % step == 0:
            elapsed = time.perf_counter() - started
            rate = done / elapsed if elapsed else 0.0
            print(f"  .. {label} {done}/{total} ({elapsed:.1f} s, {rate:.1f}/s)", flush=True)

    return report


def fmt_seconds(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def print_table(title: str, rows: Sequence[Samples]) -> None:
    headers = ["measurement", "n", "p50", "p90", "min", "max"]
    body = [
        [
            s.label,
            str(s.n),
            fmt_seconds(s.p50),
            fmt_seconds(s.p90),
            fmt_seconds(s.minimum),
            fmt_seconds(s.maximum),
        ]
        for s in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    line = "+".join("-" * (w + 2) for w in widths)
    print()
    print(f"== {title} ==")
    print(
        " | ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    print(line)
    for row in body:
        print(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    notes = [s for s in rows if s.note]
    for s in notes:
        print(f"   {s.label}: {s.note}")


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    for verdict in verdicts:
        mark = "PASS" if verdict.passed else "FAIL"
        print(f"  [{mark}] {verdict.name}: {verdict.detail}")
    failed = [v for v in verdicts if not v.passed]
    if failed:
        print("  " + "!" * 72, file=sys.stdout)
        print(f"  !!! {len(failed)} TARGET(S) FAILED: {', '.join(v.name for v in failed)}")
        print("  " + "!" * 72, flush=True)


class Databases:
    """Creates and drops the benchmark's own databases on the project's PostgreSQL server."""

    def __init__(self, project_url: str, prefix: str) -> None:
        self.project_url = project_url
        self.project_database = unquote(urlsplit(project_url).path.lstrip("/"))
        self.prefix = prefix
        self.created: list[str] = []
        if not prefix or prefix == self.project_database or not prefix.replace("_", "").isalnum():
            raise SystemExit(
                f"BENCH_DATABASE={prefix!r} must be a plain name other than the project's "
                f"({self.project_database})."
            )

    def url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.project_url)._replace(path=f"/{name}"))

    def _server(self) -> dict[str, Any]:
        """psycopg keywords for the server's maintenance database, parsed like settings.py does."""
        import environ

        config = environ.Env.db_url_config(self.project_url)
        params = {
            "dbname": "postgres",
            "user": config.get("USER") or None,
            "password": config.get("PASSWORD") or None,
            "host": unquote(str(config.get("HOST") or "")) or None,
            "port": int(config["PORT"]) if config.get("PORT") else None,
        }
        return {key: value for key, value in params.items() if value is not None}

    def create(self, name: str) -> str:
        """(Re)create database ``name`` (which must start with the bench prefix); returns its URL."""
        import psycopg

        if not name.startswith(self.prefix) or name == self.project_database:
            raise ValueError(f"refusing to create {name!r}: not a bench database")
        with psycopg.connect(**self._server(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> list[str]:
        import psycopg

        dropped = []
        with psycopg.connect(**self._server(), autocommit=True) as conn:
            for name in reversed(self.created):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
        self.created.clear()
        return dropped


@contextmanager
def gunicorn(
    *,
    database_url: str,
    workers: int,
    env: dict[str, str] | None = None,
    app: str = "leanvibe.wsgi:application",
) -> Iterator[int]:
    """gunicorn (sync workers, as ``make run`` serves) on a free localhost port, for the database
    at ``database_url``; yields the port, and stops the server by its pid afterwards."""
    command = [str(Path(sys.executable).parent / "gunicorn"), app, "--bind", "127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--chdir", str(BASE_DIR), "--log-level", "warning"]
    with server_process(
        command, name="bench-gunicorn", env={**(env or {}), "DATABASE_URL": database_url}
    ) as port:
        yield port
