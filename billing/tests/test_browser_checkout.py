"""End to end in headless Chromium: a new organisation on its trial subscribes to a paid plan
from the billing page through the local Stripe's hosted Checkout with a test card, comes back to
the billing page and sees the plan active.

Everything is real: the live server (pytest-django), the local Stripe on 127.0.0.1 (its
webhooks delivered to the live server's ``/stripe/webhook/``, registered by
``billing_webhook_setup``), and a Celery worker on this run's queue that makes the trial at
provisioning and processes the webhooks. Nothing is monkeypatched.
"""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest
import stripe
from django.core.management import call_command

from billing.models import BillingAccount
from billing.webhooks import WEBHOOK_PATH, webhook_endpoint_current
from leanvibe.tests.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    TIMEOUT_MS,
    chromium,
    expect,
    new_page,
    provision,
    sign_in,
    tenant_origin,
)
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 - the fixture
from tenants.usage import usage_record

PASSWORD = "orbital-mechanics-42"
OWNER = "peter@initech.example"
#: How long Stripe's confirmation (webhook, then the worker) may take to show on the page.
CONFIRM_SECONDS = 60

pytestmark = BROWSER_MARKS


def _reload_until(page: Any, selector: str, pattern: re.Pattern[str], what: str) -> None:
    """Reload the page until ``selector``'s text matches: the state changes on the server (a
    webhook processed by the worker), not in the page, so waiting on the page alone is not
    enough. Each reload waits for the page to load; fails after ``CONFIRM_SECONDS``."""
    deadline = time.monotonic() + CONFIRM_SECONDS
    while True:
        if pattern.search(page.locator(selector).inner_text()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {CONFIRM_SECONDS}s waiting for {what}")
        page.wait_for_timeout(250)
        page.reload()


def test_new_tenant_subscribes_through_checkout_and_sees_its_plan_active(
    site_url: str,
    stripe_local: Any,
    catalog: Any,
    celery_worker: Any,  # noqa: F811
) -> None:
    # The local Stripe delivers its events to the live server, where the worker processes them.
    call_command("billing_webhook_setup", url=f"{site_url}{WEBHOOK_PATH}", stdout=io.StringIO())
    endpoint = webhook_endpoint_current()
    assert endpoint is not None and endpoint.url == f"{site_url}{WEBHOOK_PATH}"

    tenant = provision("Initech", OWNER, PASSWORD)
    trial = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, status="trialing").first(),
        "the trial made by the provisioning task",
    )
    assert (trial.plan, trial.payment_method_last4) == ("starter", "")
    tenant.refresh_from_db()  # the trial set its billing cycle anchor: the period the page reads
    usage_record(tenant=tenant, metric="api_calls", quantity=8_500)  # 85 % of Starter's 10,000
    trial_subscription = trial.stripe_subscription_id
    origin = tenant_origin(site_url, tenant)
    stripe_origin = stripe_local.url
    failed_requests: list[str] = []

    with chromium() as browser:
        context, page = new_page(browser, failed_requests)
        sign_in(page, origin, OWNER, PASSWORD)
        expect(page).to_have_url(f"{origin}/")

        page.goto(f"{origin}/billing/")
        expect(page.locator(".page-head")).to_contain_text("Starter plan")
        expect(page.locator(".page-head")).to_contain_text("trialing")
        api_calls = page.locator('#usage [data-resource="api_calls"]')
        expect(api_calls.locator(".meter-value")).to_have_text("8,500 of 10,000 85%")
        expect(api_calls).to_have_class(re.compile(r"\bmeter-warn\b"))
        warn_fill = api_calls.locator(".meter-fill").evaluate("el => getComputedStyle(el).fill")
        assert warn_fill == "rgb(192, 122, 6)", "the warning colour of leanvibe.css was not applied"
        expect(page.locator('figure[data-metric="api_calls"] rect.usage-chart-bar')).to_have_count(30)
        subscribe = page.locator("#subscribe")
        subscribe.get_by_label("Plan").select_option("professional")
        subscribe.get_by_label("Billed").select_option("month")
        page.screenshot(path=str(ARTIFACTS / "billing-trial.png"), full_page=True)
        subscribe.get_by_role("button", name="Continue to checkout").click()

        # The local Stripe's hosted Checkout page.
        expect(page).to_have_url(re.compile(rf"^{re.escape(stripe_origin)}/checkout/cs_"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
        expect(page.locator("table")).to_contain_text("Professional")
        expect(page.get_by_label("Email")).to_have_value(OWNER)
        page.get_by_label("Card number").fill("4242 4242 4242 4242")
        page.screenshot(path=str(ARTIFACTS / "checkout.png"), full_page=True)
        page.get_by_role("button", name="Subscribe").click()

        # Back on the billing page (the session's success_url), then Stripe's confirmation.
        expect(page).to_have_url(f"{origin}/billing/?checkout=success", timeout=TIMEOUT_MS)
        _reload_until(page, ".page-head", re.compile(r"Professional plan.*active", re.S), "the active plan")
        expect(page.locator(".page-head")).to_contain_text("billed monthly")
        expect(page.locator("#subscription")).to_contain_text("Visa ending 4242")
        expect(page.locator("#subscription")).to_contain_text("Next invoice")
        expect(page.locator(".checkout-pending")).to_have_count(0)
        expect(page.locator("#subscribe")).to_have_count(0)  # paying now: no second Checkout
        # The new plan's limits, over the paid subscription's own period: it started now (Stripe's
        # billing_cycle_anchor), so the trial's 8,500 calls are behind it.
        expect(api_calls.locator(".meter-value")).to_have_text("0 of 100,000 0%")
        expect(api_calls).not_to_have_class(re.compile(r"\bmeter-warn\b"))
        page.screenshot(path=str(ARTIFACTS / "billing-active.png"), full_page=True)
        context.close()

    assert failed_requests == []
    # What the browser saw is what the database holds.
    account = BillingAccount.objects.get(tenant=tenant)
    assert (account.plan, account.interval, account.status, account.access) == (
        "professional",
        "month",
        "active",
        "ok",
    )
    assert account.stripe_subscription_id != trial_subscription
    assert (account.payment_method_brand, account.payment_method_last4) == ("visa", "4242")
    tenant.refresh_from_db()
    assert tenant.plan == "professional"
    # At Stripe: the paid subscription, the trial it replaced cancelled.
    assert stripe.Subscription.retrieve(account.stripe_subscription_id).status == "active"
    assert stripe.Subscription.retrieve(trial_subscription).status == "canceled"
