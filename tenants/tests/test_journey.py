"""The journey: steps ticked by what the organisation really does, levels, emails, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django_tenants.utils import schema_context

from tenants.journey.models import LevelUnlocked, StepDone
from tenants.journey.registry import LEVELS, journey_steps
from tenants.journey.selectors import journey_funnel
from tenants.journey.services import journey_unlock_email_send
from tenants.links import tenant_url

pytestmark = pytest.mark.django_db


def done_steps(handle) -> set[str]:
    return set(StepDone.objects.filter(tenant_id=handle.tenant.pk).values_list("step", flat=True))


def test_a_new_organisation_has_done_only_its_first_step(tenant_a):
    assert done_steps(tenant_a) == {"organisation_created"}
    assert not LevelUnlocked.objects.filter(tenant_id=tenant_a.tenant.pk).exists()


def test_the_api_lists_every_level_with_its_steps(api, tenant_a):
    token = tenant_a.login(api)
    response = api.get("/api/v1/journey", host=tenant_a.host, token=token)
    assert response.status_code == 200
    body = response.body
    assert body["level"] == 0
    assert [level["number"] for level in body["levels"]] == [1, 2, 3, 4, 5, 6]
    assert [level["name"] for level in body["levels"]] == [level.name for level in LEVELS]
    first = body["levels"][0]
    assert first["badge"] == "🏗️" and first["unlocked_at"] is None
    steps = {step["id"]: step for step in first["steps"]}
    assert list(steps) == ["organisation_created", "project_created", "api_token_used"]
    assert set(steps["organisation_created"]) == {"id", "title", "done", "done_at", "help_url"}
    assert steps["organisation_created"]["done"] is True
    # This very call was made with a token: the step is ticked before the view reads it.
    assert steps["api_token_used"]["done"] is True
    assert steps["project_created"]["done"] is False and steps["project_created"]["done_at"] is None
    assert steps["project_created"]["help_url"] == tenant_url(tenant_a.tenant, "/projects/")
    assert steps["project_created"]["help_url"].startswith(f"http://{tenant_a.host}")


def test_the_journey_is_for_members_of_the_tenant_only(api, tenant_a, tenant_b):
    assert api.get("/api/v1/journey", host=tenant_a.host).status_code == 401
    other = tenant_b.login(api)
    assert api.get("/api/v1/journey", host=tenant_a.host, token=other).status_code == 401


def test_a_second_project_created_through_the_api_completes_level_one(
    api, tenant_a, django_capture_on_commit_callbacks
):
    token = tenant_a.login(api)
    with django_capture_on_commit_callbacks(execute=False):
        api.get("/api/v1/journey", host=tenant_a.host, token=token)
    assert "project_created" not in done_steps(tenant_a)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = api.post("/api/v1/projects", {"name": "Rocket"}, host=tenant_a.host, token=token)
    assert created.status_code == 201
    assert done_steps(tenant_a) == {"organisation_created", "api_token_used", "project_created"}
    unlock = LevelUnlocked.objects.get(tenant_id=tenant_a.tenant.pk)
    assert unlock.number == 1 and unlock.emailed_at is None
    assert callbacks, "the unlock email is queued after commit"
    body = api.get("/api/v1/journey", host=tenant_a.host, token=token).body
    assert body["level"] == 1 and body["levels"][0]["unlocked_at"] is not None

    # The email goes out once, however often the task runs (a redelivered message).
    mail.outbox.clear()
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 1
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 0
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "Achievement unlocked: 🏗️ SaaS Builder"
    assert message.to == [tenant_a.owner_email]
    assert "Tenant Architect" in message.body  # what comes next


def test_only_a_project_of_its_own_ticks_the_project_step(api, tenant_a):
    token = tenant_a.login(api)
    with schema_context(tenant_a.tenant.schema_name):
        from agents.models import Project

        welcome = Project.objects.get()
    # Renaming the Welcome project, or a refused creation, is not creating a project.
    renamed = api.patch(
        f"/api/v1/projects/{welcome.pk}", {"name": "Renamed"}, host=tenant_a.host, token=token
    )
    assert renamed.status_code == 200
    refused = api.post("/api/v1/projects", {"name": "Renamed"}, host=tenant_a.host, token=token)
    assert refused.status_code in (400, 409)
    assert "project_created" not in done_steps(tenant_a)


def test_a_token_of_the_platform_site_ticks_no_tenant(api, tenant_a, django_user_model):
    from accounts.services import tokens_issue

    staff = django_user_model.objects.create_superuser("staff@leanvibe.test", "staff-password-123")
    token = tokens_issue(user=staff).access_token
    assert api.get("/api/v1/tenants", token=token).status_code == 200
    assert StepDone.objects.filter(step="api_token_used").count() == 0


def test_journey_check_finds_a_missed_step_and_backfill_ticks_it_without_email(tenant_a):
    tenant = tenant_a.tenant
    with schema_context(tenant.schema_name):
        from agents.models import Project

        # Straight into the table: no report, as for a tenant older than the journey.
        Project.objects.create(name="Made before the journey")
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("journey_check", tenant.schema_name, stdout=out)
    assert exited.value.code == 1
    assert "✗ Create a project of your own [project_created]  ← the records say done" in out.getvalue()

    out = StringIO()
    call_command("journey_backfill", tenant.schema_name, stdout=out, stderr=StringIO())
    assert "project_created" in out.getvalue()
    assert "project_created" in done_steps(tenant_a)

    out = StringIO()
    call_command("journey_check", tenant.schema_name, stdout=out)
    assert "✓ Create a project of your own" in out.getvalue()
    assert "agrees with the records" in out.getvalue()
    # A backfilled step that completes nothing unlocks nothing (level 1 still needs the API).
    assert not LevelUnlocked.objects.filter(tenant_id=tenant.pk).exists()


def test_backfill_unlocks_a_completed_level_without_email(api, tenant_a):
    tenant = tenant_a.tenant
    token = tenant_a.login(api)
    api.get("/api/v1/journey", host=tenant_a.host, token=token)
    with schema_context(tenant.schema_name):
        from agents.models import Project

        Project.objects.create(name="Old project")
    mail.outbox.clear()
    call_command("journey_backfill", stdout=StringIO(), stderr=StringIO())
    unlock = LevelUnlocked.objects.get(tenant_id=tenant.pk)
    assert unlock.number == 1 and unlock.emailed_at is not None
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 0
    assert mail.outbox == []


def test_journey_check_names_an_unknown_tenant(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("journey_check", "no-such-org", stdout=StringIO())


def test_every_level_step_is_registered_once_with_a_help_path():
    ids = [step.id for step in journey_steps()]
    assert len(ids) == len(set(ids))
    for step in journey_steps():
        assert step.help_url.startswith("/")


def test_the_funnel_counts_shares_and_median_times_worked_out_by_hand(make_tenant):
    from tenants.models import Tenant

    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 2, 1, tzinfo=UTC)
    handles = [make_tenant() for _ in range(5)]
    # Four tenants created in January, one in February (outside the period).
    created = [start + timedelta(days=d) for d in (1, 2, 3, 4)] + [end + timedelta(days=1)]
    for handle, at in zip(handles, created, strict=True):
        Tenant.objects.filter(pk=handle.tenant.pk).update(created_at=at)
    LevelUnlocked.objects.all().delete()

    def unlock(index: int, level: int, hours: float) -> None:
        LevelUnlocked.objects.create(
            tenant_id=handles[index].tenant.pk,
            number=level,
            unlocked_at=created[index] + timedelta(hours=hours),
            emailed_at=created[index],
        )

    # Level 1: tenants 0, 1, 2 after 1 h, 3 h and 8 h: 3 of 4, median 3 h.
    unlock(0, 1, 1)
    unlock(1, 1, 3)
    unlock(2, 1, 8)
    # Level 2: tenants 0 and 1 after 10 h and 20 h: 2 of 4, median 15 h (the mean of the two).
    unlock(0, 2, 10)
    unlock(1, 2, 20)
    # The February tenant reached level 1 and 3: outside the period, not counted.
    unlock(4, 1, 1)
    unlock(4, 3, 2)

    funnel = journey_funnel(start=start, end=end)
    assert funnel.tenants == 4
    by_level = {level.number: level for level in funnel.levels}
    assert (by_level[1].reached, by_level[1].share, by_level[1].median_time) == (3, 0.75, timedelta(hours=3))
    assert (by_level[2].reached, by_level[2].share, by_level[2].median_time) == (2, 0.5, timedelta(hours=15))
    assert (by_level[3].reached, by_level[3].share, by_level[3].median_time) == (0, 0.0, None)


def test_a_tenants_later_api_calls_cost_no_journey_query(api, tenant_a, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token = tenant_a.login(api)
    with CaptureQueriesContext(connection) as first, django_capture_on_commit_callbacks(execute=True):
        api.get("/api/v1/projects", host=tenant_a.host, token=token)
    assert any("journey_stepdone" in q["sql"] for q in first.captured_queries)
    with CaptureQueriesContext(connection) as later:
        api.get("/api/v1/projects", host=tenant_a.host, token=token)
    assert not any("journey" in q["sql"] for q in later.captured_queries)


def test_signing_in_to_the_api_is_not_using_it_with_a_token(api, tenant_a):
    token = tenant_a.login(api)  # a token is minted, not used
    assert "api_token_used" not in done_steps(tenant_a)
    assert api.get("/api/v1/projects", host=tenant_a.host, token=token).status_code == 200
    assert "api_token_used" in done_steps(tenant_a)
