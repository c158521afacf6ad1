"""gunicorn settings of every web process (``gunicorn -c python:leanvibe.gunicorn_conf ...``):
Prometheus' multiprocess mode, so that ``/metrics``, served by any one worker, sums the counts
of all of them (``leanvibe.multiprocess``).

``PROMETHEUS_MULTIPROC_DIR`` names the shared folder; unset, a new one is made under the
temporary folder. The master empties it when it starts (a previous run's files would be summed
in) and drops a dead worker's live gauges (``child_exit``); a replaced worker's counts stay.
"""

from __future__ import annotations

from typing import Any

from leanvibe.multiprocess import multiprocess_dir_empty, multiprocess_dir_prepare, multiprocess_process_dead

# Before any worker imports prometheus_client (the master imports no application code).
multiprocess_dir_prepare()


def on_starting(server: Any) -> None:
    multiprocess_dir_empty(multiprocess_dir_prepare())


def child_exit(server: Any, worker: Any) -> None:
    multiprocess_process_dead(worker.pid)
