"""Self-service data export (``/api/v1/exports``, the export page, the signed download) and the
audit log as CSV. The archive is written by the real task, run in-process with ``.apply()``
(the worker's round trip is in ``test_exports_worker.py``)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.exports.registry import ExportPart, export_part_register, export_part_unregister
from accounts.exports.services import data_export_signature
from accounts.models import AuditEvent, AuthToken, DataExport, Invitation, User
from accounts.tasks import data_export_build, data_exports_sweep
from accounts.tests.member_helpers import ACCEPT_LINK, Org
from accounts.tests.mfa_helpers import enrol_totp
from agents.models import Artifact, Project, TaskEvent, TaskStep
from agents.services import agent_create, project_create, task_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _roots(settings, tmp_path):
    settings.EXPORTS_ROOT = tmp_path / "exports"
    settings.AGENTS_WORKSPACE_ROOT = tmp_path / "agents"


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


def _fill(org, label: str, tmp_root: Path, capture) -> dict[str, str]:
    """Projects, a task with a step, an artifact, an event and a workspace file, a member and an
    invitation in ``org``; returns what the archive must (or must not) hold."""
    tenant = org.handle.tenant
    org.add(f"dev@{label}.example.com")
    with capture(execute=True):
        invited = org.call(
            "POST", "/api/v1/invitations", {"email": f"invitee@{label}.example.com", "role": "member"}
        )
    assert invited.status_code == 201, invited.body
    [secret] = [m.group(2) for m in (ACCEPT_LINK.search(str(msg.body)) for msg in mail.outbox) if m][-1:]
    with schema_context(tenant.schema_name):
        project = project_create(tenant=tenant, name=f"{label} launch plan")
        agent = agent_create(name=f"{label}-agent", model="recorded")
        task = task_create(
            tenant=tenant,
            title=f"{label} add numbers",
            description="Write add(a, b).",
            project=project,
            agent=agent,
        )
        TaskStep.objects.create(
            task=task, name="plan", prompt=f"{label} prompt", output=f"{label} plan output"
        )
        Artifact.objects.create(task=task, path="solution.py", kind="code", content=f"# {label} solution\n")
    workspace = tmp_root / "agents" / tenant.schema_name / str(task.id)
    workspace.mkdir(parents=True)
    (workspace / "solution.py").write_text(f"def add(a, b):  # {label} workspace\n    return a + b\n")
    return {"task_id": str(task.id), "invitation_secret": secret}


def _export(org, token: str | None = None) -> dict:
    started = org.call("POST", "/api/v1/exports", token=token)
    assert started.status_code == 202, started.body
    assert started.body["status"] == "pending" and started.body["download_url"] is None
    data_export_build.apply(args=[org.handle.id, started.body["id"]]).get()
    ready = org.call("GET", f"/api/v1/exports/{started.body['id']}", token=token)
    assert ready.status_code == 200, ready.body
    return dict(ready.body)


def _download(host: str, url: str, client: Client | None = None):
    parts = urlsplit(url)
    return (client or Client()).get(f"{parts.path}?{parts.query}", HTTP_HOST=host)


def test_the_archive_holds_everything_of_the_tenant_and_nothing_else(
    api, org, tenant_b, tmp_path, django_capture_on_commit_callbacks
):
    mine = _fill(org, "acme", tmp_path, django_capture_on_commit_callbacks)
    totp = enrol_totp(api, org.host, org.owner_token)
    other = Org(api, tenant_b)
    theirs = _fill(other, "globex", tmp_path, django_capture_on_commit_callbacks)

    body = _export(org)
    assert body["status"] == "ready" and body["progress"] == 100
    assert body["parts_done"] == body["parts_total"] >= 8
    assert body["download_url"].startswith(f"http://{org.host}")
    response = _download(org.host, body["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f"leanvibe-export-{org.handle.tenant.subdomain}-" in response["Content-Disposition"]
    data = response.getvalue()
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {
        "export.json",
        "organisation.json",
        "members.json",
        "invitations.json",
        "projects.json",
        "tasks.json",
        "agents.json",
        "audit-log.csv",
        "billing.json",
    } <= names
    assert f"workspace/{mine['task_id']}/solution.py" in names

    tenant = org.handle.tenant
    with schema_context(tenant.schema_name):
        project_names = set(Project.objects.values_list("name", flat=True))
        member_emails = set(User.objects.values_list("email", flat=True))
        audit_types = sorted(
            AuditEvent.objects.exclude(type="export.downloaded").values_list("type", flat=True)
        )
        password_hashes = set(User.objects.values_list("password", flat=True))
        token_hashes = set(AuthToken.objects.values_list("token_hash", flat=True))
        invitation_hashes = set(Invitation.objects.values_list("token_hash", flat=True))
        mfa_data = [json.dumps(a.data) for a in Authenticator.objects.all()]
    assert {p["name"] for p in json.loads(archive.read("projects.json"))} == project_names
    assert "acme launch plan" in project_names and "Welcome" in project_names
    assert {m["email"] for m in json.loads(archive.read("members.json"))} == member_emails
    tasks = json.loads(archive.read("tasks.json"))
    assert [t["id"] for t in tasks] == [mine["task_id"]]
    assert tasks[0]["steps"][0]["output"] == "acme plan output"
    assert tasks[0]["artifacts"][0]["content"] == "# acme solution\n"
    with schema_context(tenant.schema_name):
        event_types = list(TaskEvent.objects.order_by("seq").values_list("type", flat=True))
    assert event_types and [e["type"] for e in tasks[0]["events"]] == event_types
    assert json.loads(archive.read("billing.json"))["subscription"]["plan"] == "starter"
    assert [i["email"] for i in json.loads(archive.read("invitations.json"))] == ["invitee@acme.example.com"]
    rows = list(csv.DictReader(io.StringIO(archive.read("audit-log.csv").decode())))
    assert sorted(r["type"] for r in rows) == audit_types
    assert "member.added" in audit_types and "mfa.enrolled" in audit_types

    # No secret anywhere: every file's bytes, compressed or not, read back whole.
    everything = b"".join(archive.read(name) for name in names)
    secrets = [*password_hashes, *token_hashes, *invitation_hashes, mine["invitation_secret"], totp["secret"]]
    secrets += [s for d in mfa_data for s in json.loads(d).values() if isinstance(s, str) and len(s) > 8]
    for secret in secrets:
        assert secret and secret.encode() not in everything, secret
    # No hash of any hasher, and no field named like a secret (sign-ins say "method": "password").
    for needle in (b"md5$", b"pbkdf2_", b"argon2", b'"password":', b"token_hash", b'"secret"'):
        assert needle not in everything, needle
    # Nothing of the other tenant.
    for foreign in ("globex", tenant_b.owner_email, tenant_b.tenant.schema_name, theirs["task_id"]):
        assert foreign.encode() not in everything, foreign


def test_only_owners_export_and_another_tenants_export_is_not_found(api, org, tenant_b):
    _, admin_token = org.add_and_login("boss@example.com", role="admin")
    _, member_token = org.add_and_login("dev@example.com")
    for token in (admin_token, member_token):
        assert org.call("POST", "/api/v1/exports", token=token).status_code == 403
        assert org.call("GET", "/api/v1/exports", token=token).status_code == 403
    body = _export(org)
    for token in (admin_token, member_token):
        assert org.call("GET", f"/api/v1/exports/{body['id']}", token=token).status_code == 403
    assert api.get("/api/v1/exports", host=org.host).status_code == 401

    other_token = tenant_b.login(api)
    assert api.get(f"/api/v1/exports/{body['id']}", host=tenant_b.host, token=other_token).status_code == 404
    assert api.get("/api/v1/exports/not-a-uuid", host=tenant_b.host, token=other_token).status_code == 404
    listed = api.get("/api/v1/exports", host=tenant_b.host, token=other_token)
    assert listed.status_code == 200 and listed.body["results"] == []
    # A's link on B's host opens nothing.
    refused = _download(tenant_b.host, body["download_url"])
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    listed = org.call("GET", "/api/v1/exports")
    assert [e["id"] for e in listed.body["results"]] == [body["id"]]


def test_forged_and_expired_links_are_refused(org):
    body = _export(org)
    path = urlsplit(body["download_url"]).path
    forged = Client().get(f"{path}?signature={body['download_url'][-20:]}", HTTP_HOST=org.host)
    assert forged.status_code == 404 and forged.json()["error"] == "not_found"
    assert Client().get(path, HTTP_HOST=org.host).status_code == 404
    tenant = org.handle.tenant
    with schema_context(tenant.schema_name):
        export = DataExport.objects.get(id=body["id"])
        old = data_export_signature(
            tenant=tenant, export=export, issued_at=timezone.now() - timedelta(hours=25)
        )
        fresh = data_export_signature(
            tenant=tenant, export=export, issued_at=timezone.now() - timedelta(hours=23)
        )
    expired = Client().get(path, {"signature": old}, HTTP_HOST=org.host)
    assert expired.status_code == 410 and expired.json()["error"] == "link_expired"
    assert Client().get(path, {"signature": fresh}, HTTP_HOST=org.host).status_code == 200


def test_one_export_at_a_time(org):
    first = org.call("POST", "/api/v1/exports")
    assert first.status_code == 202
    second = org.call("POST", "/api/v1/exports")
    assert second.status_code == 409 and second.body["error"] == "export_in_progress"
    data_export_build.apply(args=[org.handle.id, first.body["id"]])
    assert data_export_build.apply(args=[org.handle.id, first.body["id"]]).get() is None  # built once
    assert org.call("POST", "/api/v1/exports").status_code == 202


def test_a_part_that_fails_fails_the_export_and_leaves_no_file(org, settings):
    def broken(tenant, archive):
        raise OSError("disk full")

    export_part_register(ExportPart("broken", broken, order=55))
    try:
        started = org.call("POST", "/api/v1/exports").body
        data_export_build.apply(args=[org.handle.id, started["id"]])
    finally:
        export_part_unregister("broken")
    body = org.call("GET", f"/api/v1/exports/{started['id']}").body
    assert body["status"] == "failed" and body["download_url"] is None
    assert body["error"].startswith("The archive could not be written") and "disk full" not in body["error"]
    assert 0 < body["parts_done"] < body["parts_total"]
    folder = Path(settings.EXPORTS_ROOT) / org.handle.tenant.schema_name
    assert list(folder.iterdir()) == []
    assert org.call("POST", "/api/v1/exports").status_code == 202  # a failed one blocks nothing


def test_the_sweep_deletes_archives_after_seven_days(org, settings):
    old, recent = _export(org), None
    tenant = org.handle.tenant
    with schema_context(tenant.schema_name):
        DataExport.objects.filter(id=old["id"]).update(
            finished_at=timezone.now() - timedelta(days=7, minutes=1)
        )
    recent = _export(org)
    old_file = Path(settings.EXPORTS_ROOT) / tenant.schema_name / f"{old['id']}.zip"
    recent_file = old_file.with_name(f"{recent['id']}.zip")
    assert old_file.is_file() and recent_file.is_file()
    assert data_exports_sweep.apply().get() == 1
    assert not old_file.exists() and recent_file.is_file()
    gone = org.call("GET", f"/api/v1/exports/{old['id']}").body
    assert gone["status"] == "expired" and gone["download_url"] is None and gone["deleted_at"]
    refused = _download(org.host, old["download_url"])
    assert refused.status_code == 410 and refused.json()["error"] == "export_expired"
    assert data_exports_sweep.apply().get() == 0


def test_the_export_page_starts_an_export_and_shows_its_progress(org):
    browser = Client(HTTP_HOST=org.host)
    assert (
        browser.post(
            "/accounts/login/", {"login": org.handle.owner_email, "password": org.handle.password}
        ).status_code
        == 302
    )
    page = browser.get("/settings/export/")
    assert (
        page.status_code == 200 and b"Export all data" in page.content and b"No exports yet" in page.content
    )
    assert browser.post("/settings/export/").status_code == 302
    running = browser.get("/settings/export/").content.decode()
    assert 'http-equiv="refresh"' in running and 'data-status="pending"' in running and "<progress" in running
    with schema_context(org.handle.tenant.schema_name):
        export_id = str(DataExport.objects.get().id)
    data_export_build.apply(args=[org.handle.id, export_id])
    done = browser.get("/settings/export/").content.decode()
    assert 'http-equiv="refresh"' not in done and 'data-status="ready"' in done
    assert f'id="export-download-{export_id}"' in done
    org.add("dev@example.com", role="admin")
    admin = Client(HTTP_HOST=org.host)
    admin.post("/accounts/login/", {"login": "dev@example.com", "password": "a-long-enough-passphrase-42"})
    assert admin.get("/settings/export/").status_code == 403
    assert admin.post("/settings/export/").status_code == 403


# --- the audit log as CSV --------------------------------------------------------------------
def test_the_audit_log_downloads_as_csv_with_every_event_and_the_filters(api, org):
    for n in range(2):  # the starter plan's three seats
        org.add(f"dev{n}@example.com")
    org.api.post(
        "/api/v1/auth/login",
        {"email": "ghost@example.com", "password": "x" * 12},
        host=org.host,
        headers={"User-Agent": '=HYPERLINK("http://evil")'},
    )
    response = org.api.client.get(
        "/api/v1/audit-events",
        {"format": "csv", "limit": "1"},
        HTTP_HOST=org.host,
        HTTP_AUTHORIZATION=f"Bearer {org.owner_token}",
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="audit-log-{org.handle.tenant.subdomain}-{today}.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.getvalue().decode())))
    assert rows[0] == [
        "created_at",
        "type",
        "actor_email",
        "target_email",
        "ip_address",
        "user_agent",
        "data",
    ]
    with schema_context(org.handle.tenant.schema_name):
        assert len(rows) - 1 == AuditEvent.objects.count()  # every event: no pagination
    added = [r for r in rows[1:] if r[1] == "member.added"]
    assert len(added) == 2 and {r[3] for r in added} == {"dev0@example.com", "dev1@example.com"}
    assert json.loads(added[0][6])["role"] == "member"
    [failed] = [r for r in rows[1:] if r[1] == "login.failed"]
    assert failed[5] == '\'=HYPERLINK("http://evil")'  # never a formula in a spreadsheet
    assert rows[1][1] == "audit.exported"  # the export itself, newest first

    only_logins = org.api.client.get(
        "/api/v1/audit-events",
        {"format": "csv", "type": "login"},
        HTTP_HOST=org.host,
        HTTP_AUTHORIZATION=f"Bearer {org.owner_token}",
    )
    types = {r[1] for r in list(csv.reader(io.StringIO(only_logins.getvalue().decode())))[1:]}
    assert types == {"login.succeeded", "login.failed"}


def test_the_audit_csv_keeps_the_lists_access_rule_and_refuses_bad_input(api, org):
    _, member_token = org.add_and_login("dev@example.com")
    refused = org.call("GET", "/api/v1/audit-events?format=csv", token=member_token)
    assert refused.status_code == 403
    assert org.call("GET", "/api/v1/audit-events?format=xml").status_code == 400
    bad = org.call("GET", "/api/v1/audit-events?format=csv&since=yesterday")
    assert bad.status_code == 400 and bad.body["error"] == "invalid_filter"
    assert org.call("GET", "/api/v1/audit-events?format=json").status_code == 200


def test_the_audit_page_links_to_the_csv_of_its_filters(org):
    browser = Client(HTTP_HOST=org.host)
    browser.post("/accounts/login/", {"login": org.handle.owner_email, "password": org.handle.password})
    html = browser.get("/audit/", {"type": "login", "limit": "5"}).content.decode()
    assert 'href="/audit/csv/?type=login"' in html
    download = browser.get("/audit/csv/", {"type": "login"})
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.getvalue().decode())))
    assert rows[1:] and {r[1] for r in rows[1:]} == {"login.succeeded"}
    org.add("dev@example.com")
    member = Client(HTTP_HOST=org.host)
    member.post("/accounts/login/", {"login": "dev@example.com", "password": "a-long-enough-passphrase-42"})
    assert member.get("/audit/csv/").status_code == 403
