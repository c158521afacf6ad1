"""The payment-required guard: a paused trial may read but not write; a tenant suspended for
non-payment gets 402 everywhere but sign-in and billing; nobody else is affected."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from billing import access_flags, services
from billing.models import BillingAccount
from billing.tests.stripe_fixtures import subscription
from leanvibe import redis as lv_redis
from tenants.usage import period_usage


def set_state(handle, status, *, plan="professional", failed_at=None, capture):
    BillingAccount.objects.get_or_create(tenant=handle.tenant, defaults={"stripe_customer_id": "cus_test_1"})
    if failed_at is not None:
        BillingAccount.objects.filter(tenant=handle.tenant).update(payment_failed_at=failed_at)
    with capture(execute=True):
        return services.account_apply_subscription(
            tenant_id=handle.tenant.id, sub=subscription(status=status, plan=plan, tenant_id=handle.id)
        )


@pytest.fixture
def state(django_capture_on_commit_callbacks):
    def apply(handle, status, **kw):
        return set_state(handle, status, capture=django_capture_on_commit_callbacks, **kw)

    return apply


def test_trialing_tenant_takes_the_subscriptions_plan_and_works(api, tenant_a, state):
    token = tenant_a.login(api)
    account = state(tenant_a, "trialing", plan="professional")
    tenant_a.tenant.refresh_from_db()
    assert (tenant_a.tenant.plan, account.access) == ("professional", "ok")
    assert api.post("/api/v1/projects", {"name": "Go"}, host=tenant_a.host, token=token).status_code == 201


def test_paused_trial_reads_but_every_write_is_402(api, tenant_a, tenant_b, state):
    token = tenant_a.login(api)
    state(tenant_a, "paused")
    assert access_flags.access_of(tenant_a.tenant.id) == "payment_required"
    ctx = {"host": tenant_a.host, "token": token}
    created = api.post("/api/v1/projects", {"name": "New"}, **ctx)
    assert created.status_code == 402
    assert created.body["error"] == "payment_required"
    projects = api.get("/api/v1/projects", **ctx)
    assert projects.status_code == 200
    welcome = projects.body["results"][0]["id"]
    assert api.patch(f"/api/v1/projects/{welcome}", {"name": "Renamed"}, **ctx).status_code == 402
    assert api.delete(f"/api/v1/projects/{welcome}", **ctx).status_code == 402
    # Billing and sign-in still work: members can subscribe and sign in again.
    assert api.get("/api/v1/billing/subscription", **ctx).body["status"] == "paused"
    assert api.get("/api/v1/billing/subscription", **ctx).body["payment_required"] is True
    assert tenant_a.login(api)
    # The same through X-Tenant-ID on the public host.
    assert (
        api.post("/api/v1/projects", {"name": "x"}, tenant_header=tenant_a.id, token=token).status_code == 402
    )
    # Another tenant is not affected.
    token_b = tenant_b.login(api)
    assert api.post("/api/v1/projects", {"name": "B"}, host=tenant_b.host, token=token_b).status_code == 201


def test_suspended_for_non_payment_is_402_except_billing_and_sign_in(api, tenant_a, state):
    token = tenant_a.login(api)
    account = state(tenant_a, "past_due", failed_at=timezone.now() - timedelta(days=15))
    assert account.access == "suspended"
    ctx = {"host": tenant_a.host, "token": token}
    read = api.get("/api/v1/projects", **ctx)
    assert read.status_code == 402
    assert read.body["error"] == "payment_required"
    assert api.get("/api/v1/billing/subscription", **ctx).status_code == 200
    assert tenant_a.login(api)
    # Without credentials the view answers (401), not the guard: anonymous callers learn nothing.
    assert api.get("/api/v1/projects", host=tenant_a.host).status_code == 401


def test_paid_again_restores_at_once(api, tenant_a, state):
    token = tenant_a.login(api)
    state(tenant_a, "past_due", failed_at=timezone.now() - timedelta(days=15))
    assert api.get("/api/v1/projects", host=tenant_a.host, token=token).status_code == 402
    account = state(tenant_a, "active")
    assert (account.access, account.payment_failed_at, account.suspended_at) == ("ok", None, None)
    assert api.get("/api/v1/projects", host=tenant_a.host, token=token).status_code == 200


def test_web_pages_of_a_suspended_tenant(client, tenant_a, state):
    state(tenant_a, "past_due", failed_at=timezone.now() - timedelta(days=15))
    with schema_context(tenant_a.tenant.schema_name):
        owner = User.objects.get(email=tenant_a.owner_email)
        client.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/", HTTP_HOST=tenant_a.host)
    assert response.status_code == 302
    assert response["Location"] == "/billing/"
    # The sign-in page stays reachable.
    client.logout()
    assert client.get("/accounts/login/", HTTP_HOST=tenant_a.host).status_code == 200


def test_the_payment_gate_is_read_in_the_meters_single_round_trip(api, tenant_a, state, monkeypatch):
    """The API's payment guard costs no extra Redis call: its flag is read by the usage meter's
    script (``tenants.registry.ApiGate``), and a refused write is not counted."""
    token = tenant_a.login(api)
    state(tenant_a, "paused")
    ctx = {"host": tenant_a.host, "token": token}
    assert api.get("/api/v1/projects", **ctx).status_code == 200  # loads the script
    before = period_usage(tenant_a.tenant, "api_calls")
    client = lv_redis.client()
    sent: list[str] = []
    original = type(client).execute_command

    def recording(self, *args, **kwargs):
        if self is client:
            sent.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(client), "execute_command", recording)
    refused = api.post("/api/v1/projects", {"name": "New"}, **ctx)
    read = api.get("/api/v1/projects", **ctx)
    monkeypatch.undo()
    assert refused.status_code == 402 and read.status_code == 200
    assert sent == ["EVALSHA", "EVALSHA"]  # one round trip each, the refused one included
    assert period_usage(tenant_a.tenant, "api_calls") == before + 1  # the read only
