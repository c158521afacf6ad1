"""Celery application. Tasks carry their tenant's schema (tenant-schemas-celery)."""

import os

from tenant_schemas_celery.app import CeleryApp

from leanvibe.multiprocess import worker_environment_prepare

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leanvibe.settings")
# A worker with WORKER_METRICS_PORT: Prometheus' multiprocess folder, before the metrics exist.
worker_environment_prepare()

app = CeleryApp("leanvibe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
