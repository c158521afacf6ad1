"""The Kubernetes manifests, the Dockerfile and .env.example agree with each other and with the code.

Every manifest is checked against the Kubernetes API schemas that ship inside the
``kubernetes-validate`` package (no network). The rest checks what a schema cannot: the probes
hit paths our health middleware answers, the commands name a WSGI module, a Celery app and a
management command that exist, selectors pick the right pods, and every environment variable a
manifest sets is one the settings read.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from django.core.management import get_commands
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30"  # the oldest release still in common support; newer ones accept these too

# Variables the platform's processes read although the settings do not.
RUNTIME_VARIABLES = {
    "WEB_CONCURRENCY": "gunicorn",  # worker count
    "FORWARDED_ALLOW_IPS": "gunicorn",  # whose X-Forwarded-Proto to trust
    "HF_HUB_OFFLINE": "huggingface_hub",  # the inference server: never the model hub
}

# Reads of the environment: env("X"), env.int("X", ...), os.environ["X"], os.environ.get("X"),
# os.getenv("X"). An assignment (os.environ["X"] = ...) is not a read.
_ENV_READ = re.compile(
    r"""(?:\benv(?:\.\w+)?\(|os\.environ\.get\(|os\.getenv\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""(?!\s*\]\s*=[^=])"""
)


def settings_variables() -> set[str]:
    """Every variable named by leanvibe/settings.py and the environment and embedded-services
    modules it calls."""
    names: set[str] = set()
    for module in ("settings.py", "environment.py", "embedded.py"):
        names |= set(_ENV_READ.findall((ROOT / "leanvibe" / module).read_text()))
    return names


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def manifests() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in _documents(path)]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(manifest, pod spec) of every Deployment and Job."""
    for doc in manifests():
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, doc["metadata"]["name"]
    return dict(containers[0])


INFERENCE = "leanvibe-inference"
AGENTS_WORKER = "leanvibe-agents-worker"


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


def dockerfile() -> dict[str, str]:
    """The last instruction of each kind, the one that takes effect."""
    return dict(dockerfile_instructions())


def config_data() -> dict[str, str]:
    return dict(one("ConfigMap", "leanvibe-config")["data"])


def secret_data() -> dict[str, str]:
    return dict(one("Secret", "leanvibe-secrets")["stringData"])


# --- schema validation --------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]
    assert kustomization["namespace"] == one("Namespace", "leanvibe")["metadata"]["name"]
    # The overlay point for the real image: the name every workload uses.
    assert {image["name"] for image in kustomization["images"]} == {"leanvibe"}


@pytest.mark.parametrize(
    "document",
    manifests(),
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_manifest_is_valid_kubernetes(document: dict[str, Any]) -> None:
    # strict: an unknown or misspelt field is an error, not silently ignored by the API server.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_manifests_cover_the_platform() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in manifests())
    assert kinds == sorted(
        [
            ("Namespace", "leanvibe"),
            ("ConfigMap", "leanvibe-config"),
            ("Secret", "leanvibe-secrets"),
            ("Deployment", "leanvibe-web"),
            ("Deployment", "leanvibe-streams"),
            ("Deployment", "leanvibe-worker"),
            ("Deployment", "leanvibe-beat"),
            ("Deployment", "leanvibe-agents-worker"),
            ("Deployment", "leanvibe-inference"),
            ("PersistentVolumeClaim", "leanvibe-models"),
            ("Job", "leanvibe-migrate"),
            ("Job", "leanvibe-model-install"),
            ("Service", "leanvibe-web"),
            ("Service", "leanvibe-streams"),
            ("Service", "leanvibe-inference"),
            ("NetworkPolicy", "leanvibe-inference"),
            ("NetworkPolicy", "leanvibe-agents-worker-egress"),
            ("Ingress", "leanvibe"),
            ("Ingress", "leanvibe-streams"),
            ("HorizontalPodAutoscaler", "leanvibe-web"),
            ("HorizontalPodAutoscaler", "leanvibe-worker"),
            ("PodDisruptionBudget", "leanvibe-web"),
        ]
    )


# --- the image and what each workload runs in it ------------------------------------------------


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
        args for keyword, args in dockerfile_instructions() if keyword == "RUN" and "collectstatic" in args
    ]
    assert len(collect) == 1
    assert "DATABASE_URL=" in collect[0] and "REDIS_URL=" in collect[0]


def test_dockerfile_installs_bubblewrap_for_the_agent_sandbox() -> None:
    installs = [
        args for keyword, args in dockerfile_instructions() if keyword == "RUN" and "apt-get install" in args
    ]
    assert any("bubblewrap" in args.split() for args in installs), "agents/sandbox.py needs bwrap"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".data", ".venv", ".git"} <= ignored


def test_every_workload_runs_the_same_image_as_the_same_non_root_user() -> None:
    uid = int(dockerfile()["USER"].split(":")[0])
    for doc, pod in workloads():
        name = doc["metadata"]["name"]
        assert container(doc)["image"] == "leanvibe", name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, name
        assert pod["automountServiceAccountToken"] is False, name


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


def test_beat_runs_exactly_once() -> None:
    beat = one("Deployment", "leanvibe-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    targets = {
        d["spec"]["scaleTargetRef"]["name"] for d in manifests() if d["kind"] == "HorizontalPodAutoscaler"
    }
    assert "leanvibe-beat" not in targets


def test_migrate_job_runs_platform_migrate_once() -> None:
    job = one("Job", "leanvibe-migrate")
    assert container(job)["command"] == ["python", "manage.py", "platform_migrate"]
    assert get_commands()["platform_migrate"] == "tenants"
    assert job["spec"]["parallelism"] == 1 and job["spec"]["completions"] == 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_containers_are_hardened_and_have_resources() -> None:
    for doc, pod in workloads():
        name = doc["metadata"]["name"]
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


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_selectors_pick_exactly_their_own_pods() -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d, _ in workloads()}
    for doc in manifests():
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            picked = {name for name, labels in pods.items() if _matches(selector, labels)}
            assert picked == {doc["metadata"]["name"]}, doc["metadata"]["name"]
    web_only = {"leanvibe-web"}
    service_selector = one("Service", "leanvibe-web")["spec"]["selector"]
    assert {n for n, labels in pods.items() if _matches(service_selector, labels)} == web_only
    pdb_selector = one("PodDisruptionBudget", "leanvibe-web")["spec"]["selector"]["matchLabels"]
    assert {n for n, labels in pods.items() if _matches(pdb_selector, labels)} == web_only


def test_autoscaled_deployments_leave_the_replica_count_to_the_autoscaler() -> None:
    deployments = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "Deployment"}
    hpas = [d for d in manifests() if d["kind"] == "HorizontalPodAutoscaler"]
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {"leanvibe-web", "leanvibe-worker"}
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        # `kubectl apply` of a set replicas would undo the autoscaler on every deploy.
        assert "replicas" not in deployments[target["name"]]["spec"], target["name"]
        # CPU utilisation is measured against the request.
        assert "cpu" in container(deployments[target["name"]])["resources"]["requests"]
    web_hpa = one("HorizontalPodAutoscaler", "leanvibe-web")
    pdb = one("PodDisruptionBudget", "leanvibe-web")
    assert web_hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"], "a drain must be able to evict"


def test_ingress_serves_the_base_domain_and_every_tenant_subdomain() -> None:
    base_domain = config_data()["BASE_DOMAIN"]
    ingress = one("Ingress", "leanvibe")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {base_domain, f"*.{base_domain}"}
    assert set(ingress["spec"]["tls"][0]["hosts"]) == hosts
    service = one("Service", "leanvibe-web")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == service["metadata"]["name"]
            assert path["backend"]["service"]["port"]["name"] in port_names


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


def test_every_variable_the_manifests_set_is_read_by_the_code() -> None:
    known = settings_variables() | set(RUNTIME_VARIABLES)
    assert set(config_data()) - known == set()
    assert set(secret_data()) - known == set()
    for doc, _ in workloads():
        names = {item["name"] for item in container(doc).get("env", [])}
        assert names - known == set(), doc["metadata"]["name"]


def test_the_image_and_every_workload_run_in_production() -> None:
    assert "LEANVIBE_ENV=production" in dict(dockerfile_instructions())["ENV"].split()
    assert config_data()["LEANVIBE_ENV"] == "production"


def test_the_manifests_values_pass_the_production_checks_and_check_deploy() -> None:
    """The ConfigMap and Secret, with the Secret's placeholders replaced as an operator would,
    satisfy LEANVIBE_ENV=production and leave `manage.py check --deploy` with nothing to say."""
    values = {**config_data(), **secret_data(), "SECRET_KEY": secrets.token_urlsafe(50)}
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
        env={**env, "SECRET_KEY": secret_data()["SECRET_KEY"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr


def test_every_workload_gets_the_real_database_and_redis() -> None:
    """LEANVIBE_ENV=production refuses to start without DATABASE_URL / REDIS_URL / SECRET_KEY."""
    provided = set(config_data()) | set(secret_data())
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(secret_data())
    assert "DEBUG" in provided and config_data()["DEBUG"].lower() == "false"
    for doc, _ in workloads():
        if doc["metadata"]["name"] == INFERENCE:
            # mlx_lm.server is no Django process: it gets neither the settings nor the secrets.
            assert "envFrom" not in container(doc)
            continue
        sources = container(doc)["envFrom"]
        assert {"configMapRef": {"name": "leanvibe-config"}} in sources, doc["metadata"]["name"]
        assert {"secretRef": {"name": "leanvibe-secrets"}} in sources, doc["metadata"]["name"]


def test_secret_holds_only_placeholders() -> None:
    for key, value in secret_data().items():
        assert "REPLACE-ME" in value, f"{key} looks like a real secret"


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
        volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
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
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d, _ in workloads()}
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
