"""gunicorn app of the benchmarks that serve over HTTP (webhooks, load): ``leanvibe.wsgi`` with
Celery's default queue set to the bench's private one (``BENCH_CELERY_QUEUE``), so whatever the
server queues reaches only the bench's own worker (or none), never another worker on the same
Redis."""

import os

from leanvibe.celery import app as celery_app
from leanvibe.wsgi import application

celery_app.conf.task_default_queue = os.environ["BENCH_CELERY_QUEUE"]

__all__ = ["application"]
