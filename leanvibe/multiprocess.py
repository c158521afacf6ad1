"""Prometheus' multiprocess mode for the processes that fork workers: gunicorn (web) and Celery's
prefork pool. Each process writes its counts to files in ``PROMETHEUS_MULTIPROC_DIR`` and a
scrape sums them (``leanvibe.metrics.scrape_registry``).

prometheus_client decides its mode when it is first imported, from the environment: the folder
must be named before that, in the parent, so this module imports prometheus_client only inside
its functions, and is called by the gunicorn config module (``leanvibe.gunicorn_conf``) and by
``leanvibe.celery`` before Django (and with it django-prometheus) is set up.

Celery: with ``WORKER_METRICS_PORT`` set, a worker's main process serves its pool's metrics on
that port (``/metrics``, every path in fact: prometheus_client's own server), and beat serves its
own (it runs no task: its target being up is what it tells); off by default.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from celery import signals

logger = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
PORT_ENV = "WORKER_METRICS_PORT"


def multiprocess_dir_prepare() -> str:
    """The folder of this process tree: ``PROMETHEUS_MULTIPROC_DIR``, or a new empty folder
    under the temporary folder, named in the environment for the children."""
    if not os.environ.get(ENV):
        os.environ[ENV] = folder = tempfile.mkdtemp(prefix="leanvibe-prometheus-")
        atexit.register(_remove_if_owner, folder, os.getpid())
    return os.environ[ENV]


def _remove_if_owner(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # not a forked child that happens to run the exit handlers
        shutil.rmtree(folder, ignore_errors=True)


def multiprocess_dir_empty(path: str | Path, *, keep_pid: int | None = None) -> Path:
    """Make ``path`` exist and hold no metrics files (but ``keep_pid``'s own): a previous run's
    processes (dead pids) would otherwise be summed into this one's."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        if keep_pid is None or not stale.stem.endswith(f"_{keep_pid}"):
            stale.unlink(missing_ok=True)
    return folder


def multiprocess_process_dead(pid: int) -> None:
    """A worker process ended: drop its live gauges (its counters stay counted)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess  # only now: the mode is decided at import

        multiprocess.mark_process_dead(pid)


# --- Celery workers -------------------------------------------------------------------------------
def worker_metrics_port() -> int:
    """``WORKER_METRICS_PORT`` (0: no metrics server). Read from the environment: the worker's
    metrics must be set up before the settings are."""
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{PORT_ENV} must be a port number (1-65535), not {raw!r}")
    return int(raw)


def worker_environment_prepare() -> None:
    """Called when ``leanvibe.celery`` is imported: with a metrics port, the multiprocess folder
    is named before anything imports prometheus_client (the prefork children inherit it)."""
    if worker_metrics_port():
        multiprocess_dir_prepare()


@signals.celeryd_init.connect
def _worker_starting(**_: Any) -> None:
    """The worker's main process, before its pool starts: an empty folder for this run (but its
    own files: Django is set up by now, and its metrics exist)."""
    if worker_metrics_port():
        multiprocess_dir_empty(multiprocess_dir_prepare(), keep_pid=os.getpid())


@signals.worker_ready.connect
@signals.beat_init.connect
def _metrics_server_start(**_: Any) -> None:
    port = worker_metrics_port()
    if not port:
        return
    from prometheus_client import start_http_server  # after Django's setup, like every metric

    from leanvibe.metrics import scrape_registry

    start_http_server(port, registry=scrape_registry(snapshot=False))
    logger.info("metrics on port %s (%s)", port, os.environ.get(ENV))


@signals.worker_process_shutdown.connect
def _pool_process_exit(**_: Any) -> None:
    multiprocess_process_dead(os.getpid())
