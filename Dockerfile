# LeanVibe: one image for the web server, the Celery workers, Celery beat, the migrate Job and
# the agents' inference server.
#
#   web (default):  gunicorn leanvibe.wsgi on :8000
#   streams:        gunicorn leanvibe.asgi:application --worker-class asgi --bind 0.0.0.0:8000
#   worker:         celery -A leanvibe worker --loglevel INFO --queues celery (agents: --queues agents)
#   beat:           celery -A leanvibe beat --loglevel INFO --schedule /tmp/celerybeat-schedule
#   migrate:        python manage.py platform_migrate
#   inference:      mlx_lm.server --model /models/smollm2 --host 0.0.0.0 --port 8080 (mlx-lm's own)
#
# Two stages: the builder installs requirements.txt into a virtualenv at /opt/venv; the runtime
# stage copies that virtualenv (same base image, same path, so its scripts keep working) and
# gets neither pip's cache nor the build's leftovers.
#
# bookworm is pinned on purpose: the mlx wheels need glibc >= 2.35 (bookworm has 2.36), and every
# other binary dependency (psycopg, lxml, xmlsec, mlx-cpu) ships a manylinux wheel, so no
# compiler or system library has to be installed. The one system package is bubblewrap: the
# worker runs agent-generated code under it (agents/sandbox.py) and refuses agent runs with
# sandbox_unavailable when it is missing or cannot create its namespaces (in Kubernetes: the pod
# settings of k8s/base/deployment-agents-worker.yaml, docs/architecture.md "Agent sandbox").
#
# hadolint checks this file (leanvibe/tests/test_k8s_manifests.py).

FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt


FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=leanvibe.settings \
    LEANVIBE_ENV=production \
    WEB_CONCURRENCY=2

# Not pinned to a version: bookworm's security updates replace a package's version in the
# archive, and a pinned one would then fail to install; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY . .

# The image runs with LEANVIBE_ENV=production, whose settings refuse to load without a database,
# a Redis, a real SECRET_KEY and BASE_DOMAIN: the build gives them values that are never
# connected to (collecting static files opens no connection) and a throw-away random key.
# Nothing of these values stays in the image.
RUN DATABASE_URL=postgres://build:build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    BASE_DOMAIN=build.invalid \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput \
    && python -m compileall -q leanvibe tenants accounts agents billing \
    && chown -R app:app /app/.data

# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001

EXPOSE 8000

# --no-control-socket: gunicorn would otherwise create ~/.gunicorn/gunicorn.ctl, which fails on
# a read-only root filesystem. /dev/shm keeps worker heartbeats off the container's disk.
# Workers come from WEB_CONCURRENCY, which gunicorn reads itself. The config module puts
# Prometheus in multiprocess mode, so /metrics sums every worker (docs/operations.md).
CMD ["gunicorn", "leanvibe.wsgi:application", \
     "--config", "python:leanvibe.gunicorn_conf", \
     "--bind", "0.0.0.0:8000", \
     "--worker-tmp-dir", "/dev/shm", \
     "--no-control-socket", \
     "--access-logfile", "-", \
     "--timeout", "60", \
     "--graceful-timeout", "25"]
