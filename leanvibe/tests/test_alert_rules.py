"""The Prometheus alert rules (k8s/base/prometheusrule.yaml) pass ``promtool check rules`` and
``promtool test rules`` (k8s/monitoring/alerts_test.yml: for every alert a series that fires it
and one that does not), and they and the Grafana dashboard (k8s/monitoring/grafana-dashboard.json)
name only metrics the code exposes, so renaming a metric breaks a test here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client

from leanvibe.metrics import scrape_registry

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s" / "base" / "prometheusrule.yaml"
RULE_TESTS = ROOT / "k8s" / "monitoring" / "alerts_test.yml"
DASHBOARD = ROOT / "k8s" / "monitoring" / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian: apt-get install -y prometheus; .ci/run installs it)",
)
#: The alerts the operations guide promises.
ALERTS = {
    "LeanVibeHigh5xxRate",
    "LeanVibeHighLatencyP95",
    "LeanVibeInstanceDown",
    "LeanVibeCeleryQueueBacklog",
    "LeanVibeMetricsSnapshotStale",
    "LeanVibeAgentFailureRate",
    "LeanVibeWebhookFailures",
    "LeanVibeWebhooksRejected",
    "LeanVibeTenantsInDunning",
}
#: Series Prometheus itself makes for every target.
PROMETHEUS_SERIES = {"up"}


def rule_resource() -> dict[str, Any]:
    return dict(yaml.safe_load(RULES.read_text()))


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_resource()["spec"]["groups"] for rule in group["rules"]]


def rules_file(folder: Path) -> Path:
    """The groups as a plain Prometheus rules file, beside a copy of the tests that name it."""
    path = folder / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule_resource()["spec"]["groups"]}, sort_keys=False))
    shutil.copy(RULE_TESTS, folder / RULE_TESTS.name)
    return path


def test_the_rules_are_a_namespace_less_prometheus_rule_of_the_platform() -> None:
    resource = rule_resource()
    assert (resource["apiVersion"], resource["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert "namespace" not in resource["metadata"]  # the overlay's namespace applies
    assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "leanvibe"
    assert {rule["alert"] for rule in rules()} == ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


@needs_promtool
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_fire_and_hold_every_alert(tmp_path: Path) -> None:
    rules_file(tmp_path)
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(tmp_path / RULE_TESTS.name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_series_that_fires_it_and_one_that_does_not() -> None:
    fires: set[str] = set()
    holds: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else holds).add(check["alertname"])
    assert fires == ALERTS, ALERTS - fires
    assert holds == ALERTS, ALERTS - holds


# --- metric names: what the rules and the dashboard ask for exists --------------------------------
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
}
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")
_OURS = ("leanvibe_", "django_", "celery_", "python_", "process_")


def exposed_names(client: Client) -> set[str]:
    """Every sample name /metrics can expose: a request first (django-prometheus makes its
    request metrics with its middleware), then every family of the scrape's registry, with the
    names its type adds, whether or not it has a sample yet."""
    client.get("/health/ready", REMOTE_ADDR="127.0.0.1")
    names = set(PROMETHEUS_SERIES)
    for family in scrape_registry().collect():
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names


def used_names(expression: str) -> set[str]:
    """The metric names in a PromQL expression (quoted label values left out)."""
    bare = _QUOTED.sub('""', expression)
    return {name for name in _NAME.findall(bare) if name.startswith(_OURS) or name in PROMETHEUS_SERIES}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


@pytest.mark.django_db
def test_the_rules_and_the_dashboard_use_only_metrics_the_code_exposes(client: Client) -> None:
    exposed = exposed_names(client)
    used = {name for rule in rules() for name in used_names(rule["expr"])}
    used |= {name for expression in dashboard_expressions() for name in used_names(expression)}
    assert len(used) >= 15  # the scan finds names (a broken regex would find none and pass)
    assert used - exposed == set(), f"not exposed by the code: {sorted(used - exposed)}"
    assert "leanvibe_tennants" not in exposed  # a misspelt name would be caught


def test_a_renamed_metric_is_caught_by_the_name_scan() -> None:
    assert used_names('sum(rate(leanvibe_signups_total{plan="django_x"}[5m])) / up') == {
        "leanvibe_signups_total",
        "up",
    }


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["uid"] and dashboard["title"]
    assert [v["type"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("requests", "5xx", "latency", "tenants by plan", "sign-ups", "sign-ins", "mrr", "dunning"):
        assert topic in titles, topic
    for topic in ("webhook", "agent tasks", "duration", "tokens", "queue"):
        assert topic in titles, topic
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


@needs_promtool
def test_the_dashboards_expressions_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (as recording rules: it has no other offline parser)."""
    groups = [
        {
            "name": "dashboard",
            "rules": [
                {"record": f"dashboard:query{index}", "expr": expression}
                for index, expression in enumerate(dashboard_expressions())
            ],
        }
    ]
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
