"""The billing page: members read it; owners cancel, resume, change plan and open the portal."""

from __future__ import annotations

import stripe
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.services import user_create
from billing.models import BillingAccount
from billing.tests.test_subscriptions import trial  # noqa: F401 - the fixture


def _browser(handle, email=None) -> Client:
    browser = Client(HTTP_HOST=handle.host)
    with schema_context(handle.tenant.schema_name):
        user = User.objects.get(email=email or handle.owner_email)
        browser.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return browser


def test_owner_manages_from_the_billing_page(trial):  # noqa: F811
    owner = _browser(trial)
    page = owner.get("/billing/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Professional plan" in html and "Cancel at period end" in html
    # A trial: paying (Checkout) and changing the trial's plan are told apart.
    assert "Continue to checkout" in html and "Change the trial's plan" in html
    assert "nothing is charged until it ends" in html

    assert owner.post("/billing/cancel/").status_code == 302
    assert BillingAccount.objects.get(tenant=trial.tenant).cancel_at_period_end is True
    assert "Resume" in owner.get("/billing/").content.decode()
    owner.post("/billing/resume/")
    assert BillingAccount.objects.get(tenant=trial.tenant).cancel_at_period_end is False

    portal = owner.post("/billing/portal/")
    assert portal.status_code == 302 and portal["Location"].startswith("http://127.0.0.1")
    bad = owner.post("/billing/change/", {"plan_id": "gold", "interval": "month"})
    assert bad.status_code == 400 and "field-error" in bad.content.decode()


def test_members_read_but_have_no_buttons(trial):  # noqa: F811
    with schema_context(trial.tenant.schema_name):
        user_create(email="member@example.com", password=trial.password, role=Role.MEMBER)
    member = _browser(trial, "member@example.com")
    html = member.get("/billing/").content.decode()
    assert "Professional plan" in html and "Cancel at period end" not in html
    assert member.post("/billing/cancel/").status_code == 403
    assert BillingAccount.objects.get(tenant=trial.tenant).cancel_at_period_end is False


def test_public_pricing_page_shows_the_catalogue(client, db):
    html = client.get("/pricing/").content.decode()
    assert "<strong>$29</strong> a month, or $290 a year" in html
    assert "<strong>$499</strong> a month, or $4,990 a year" in html
    assert "then 0.01¢ each" in html and "Start with Professional" in html


def test_owner_of_a_trial_subscribes_through_checkout(trial, stripe_local):  # noqa: F811
    owner = _browser(trial)
    html = owner.get("/billing/").content.decode()
    assert 'id="subscribe"' in html and "Continue to checkout" in html
    answer = owner.post("/billing/subscribe/", {"subscribe-plan_id": "starter", "subscribe-interval": "year"})
    assert answer.status_code == 302
    assert answer["Location"].startswith(f"{stripe_local.url}/checkout/cs_")
    session_id = answer["Location"].rsplit("/", 1)[1]
    session = stripe.checkout.Session.retrieve(session_id)
    assert session.client_reference_id == trial.id and session.mode == "subscription"
    assert str(session.success_url).endswith("/billing/?checkout=success")
    # Nothing changes before Stripe confirms the payment.
    assert BillingAccount.objects.get(tenant=trial.tenant).status == "trialing"

    bad = owner.post("/billing/subscribe/", {"subscribe-plan_id": "gold", "subscribe-interval": "month"})
    assert bad.status_code == 400 and "field-error" in bad.content.decode()


def test_members_cannot_subscribe(trial):  # noqa: F811
    with schema_context(trial.tenant.schema_name):
        user_create(email="member@example.com", password=trial.password, role=Role.MEMBER)
    member = _browser(trial, "member@example.com")
    assert 'id="subscribe"' not in member.get("/billing/").content.decode()
    choice = {"subscribe-plan_id": "starter", "subscribe-interval": "month"}
    answer = member.post("/billing/subscribe/", choice)
    assert answer.status_code == 403
