"""Celery application. Tasks carry their tenant's schema (tenant-schemas-celery)."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leanvibe.settings")

app = CeleryApp("leanvibe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
