"""Revenue analytics on a set of subscriptions built through the real ``stripe`` library against
the local Stripe (one test clock), mirrored into dj-stripe, checked against figures worked out by
hand below."""

# The library types expandable fields as unions; the tests read what the server answers.
# mypy: disable-error-code="union-attr, arg-type, index"

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from djstripe.models import Coupon as DjstripeCoupon
from djstripe.models import Customer as DjstripeCustomer
from djstripe.models import Invoice as DjstripeInvoice
from djstripe.models import Subscription as DjstripeSubscription

from accounts.models import User
from accounts.services import tokens_issue
from billing import revenue, services
from billing.models import InvoiceMirror, RevenueSnapshot

DAY = 86400
T0 = 1_780_000_000  # 2026-05-28 20:26:40 UTC: the clock's start
NOW = T0 + 35 * DAY  # 2026-07-02 20:26:40 UTC: where the figures are read
NOW_DT = dt.datetime.fromtimestamp(NOW, tz=dt.UTC)


def _advance(clock_id: str, to: int) -> None:
    stripe.test_helpers.TestClock.advance(clock_id, frozen_time=to)
    ready = stripe.test_helpers.TestClock.retrieve(clock_id)
    assert ready.status == "ready" and ready.frozen_time == to


def _customer(clock_id: str, name: str, card: str = "pm_card_visa") -> str:
    customer = stripe.Customer.create(email=f"{name}@example.com", name=name, test_clock=clock_id)
    pm = stripe.PaymentMethod.attach(card, customer=customer.id)
    stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return str(customer.id)


def _subscribe(clock_id: str, name: str, items: list[dict[str, Any]], **kwargs: Any) -> str:
    card = kwargs.pop("card", "pm_card_visa")
    sub = stripe.Subscription.create(customer=_customer(clock_id, name, card), items=items, **kwargs)
    return str(sub.id)


def _mirror() -> None:
    """Into dj-stripe's tables as the webhooks leave them: coupons (dj-stripe's coupon.*
    handler), subscriptions as ``billing.services`` re-reads them (discounts expanded), invoices
    as the invoice.* handler retrieves and stores them (``Invoice.expand_fields``: discounts
    expanded, which makes dj-stripe's Discount rows; ``InvoiceMirror``, as processing does)."""
    for coupon in stripe.Coupon.list(limit=100).auto_paging_iter():
        DjstripeCoupon.sync_from_stripe_data(coupon)
    for sub in stripe.Subscription.list(status="all", limit=100).auto_paging_iter():
        DjstripeSubscription.sync_from_stripe_data(
            stripe.Subscription.retrieve(sub.id, expand=services.SUBSCRIPTION_EXPAND)
        )
    for invoice in stripe.Invoice.list(limit=100).auto_paging_iter():
        InvoiceMirror.sync_from_stripe_data(
            stripe.Invoice.retrieve(invoice.id, expand=DjstripeInvoice.expand_fields)
        )


@pytest.fixture
def book(stripe_local, catalog) -> dict[str, str]:
    """Nine customers on one test clock, each with one subscription:

    =====  =========================================  ===========================================
    name   subscription                               at NOW (T0 + 35 days)
    =====  =========================================  ===========================================
    a      starter monthly 2900                        active
    b      professional yearly 99000                   active
    c      enterprise monthly 49900 + 2 metered        active, forever 20 % coupon
    d      professional monthly 9900                   active, once 50 % coupon (used up)
    e      starter monthly x 3                         active, forever 10.00 amount-off coupon
    f      professional monthly, 60-day trial          trialing
    g      starter monthly                             canceled at T0 + 33 days
    h      professional monthly                        active, 25 % repeating 3 months (to T0+3mo)
    i      starter monthly, trial to T0 + 33 d,        past_due (its first charge failed)
           card that fails every charge
    =====  =========================================  ===========================================
    """
    price = {key: str(p.id) for key, p in catalog.items()}
    clock = str(stripe.test_helpers.TestClock.create(frozen_time=T0, name="revenue").id)
    forever20 = stripe.Coupon.create(percent_off=20, duration="forever", id="forever20")
    forever_1000 = stripe.Coupon.create(amount_off=1000, currency="usd", duration="forever", id="ten_off")
    once50 = stripe.Coupon.create(percent_off=50, duration="once", id="once50")
    rep25 = stripe.Coupon.create(percent_off=25, duration="repeating", duration_in_months=3, id="rep25")
    subs = {
        "a": _subscribe(clock, "a", [{"price": price["leanvibe_starter_month"]}]),
        "b": _subscribe(clock, "b", [{"price": price["leanvibe_professional_year"]}]),
        "c": _subscribe(
            clock,
            "c",
            [
                {"price": price["leanvibe_enterprise_month"]},
                {"price": price["leanvibe_overage_api_calls"]},
                {"price": price["leanvibe_overage_ai_requests"]},
            ],
            discounts=[{"coupon": forever20.id}],
        ),
        "d": _subscribe(
            clock, "d", [{"price": price["leanvibe_professional_month"]}], discounts=[{"coupon": once50.id}]
        ),
        "e": _subscribe(
            clock,
            "e",
            [{"price": price["leanvibe_starter_month"], "quantity": 3}],
            discounts=[{"coupon": forever_1000.id}],
        ),
        "f": _subscribe(clock, "f", [{"price": price["leanvibe_professional_month"]}], trial_period_days=60),
        "g": _subscribe(clock, "g", [{"price": price["leanvibe_starter_month"]}]),
        "h": _subscribe(
            clock, "h", [{"price": price["leanvibe_professional_month"]}], discounts=[{"coupon": rep25.id}]
        ),
        "i": _subscribe(
            clock,
            "i",
            [{"price": price["leanvibe_starter_month"]}],
            trial_end=T0 + 33 * DAY,
            card="pm_card_chargeCustomerFail",
        ),
    }
    _advance(clock, T0 + 33 * DAY + 3600)
    stripe.Subscription.cancel(subs["g"])
    _advance(clock, NOW)
    statuses = {name: stripe.Subscription.retrieve(sid).status for name, sid in subs.items()}
    assert statuses == {
        **dict.fromkeys("abcdeh", "active"),
        "f": "trialing",
        "g": "canceled",
        "i": "past_due",
    }
    _mirror()
    return subs


def test_mrr_arr_churn_arpa_and_revenue_by_plan_match_the_hand_figures(book):
    # MRR (cents), rounded per subscription then summed:
    #   a  2900
    #   b  99000 / 12                        =  8250
    #   c  49900 x (1 - 0.20)                = 39920   (metered items: 0)
    #   d  9900                              (once coupon: not deducted)
    #   e  3 x 2900 - 1000                   =  7700
    #   f  0                                 (trialing)
    #   g  0                                 (canceled)
    #   h  9900 x (1 - 0.25)                 =  7425   (repeating, in effect until T0 + 3 months)
    #   i  2900                              (past_due counts)
    #   total = 2900 + 8250 + 39920 + 9900 + 7700 + 7425 + 2900 = 78995; ARR = 12 x 78995 = 947940
    # Paying tenants (customers with MRR > 0): a b c d e h i = 7; ARPA = 78995 / 7 = 11285.
    # By plan: starter a + e + i = 2900 + 7700 + 2900 = 13500; professional b + d + h =
    #   8250 + 9900 + 7425 = 25575; enterprise c = 39920.
    # Churn: paying at NOW - 30 d (T0 + 5 d, out of trial): a b c d e g h = 7 (f and i in trial);
    #   ended since: g = 1; 1 / 7 = 0.142857… → 0.1429.
    # The mirror holds c's discount whole, as the re-read expands it.
    discounts = DjstripeSubscription.objects.get(id=book["c"]).stripe_data["discounts"]
    assert len(discounts) == 1 and discounts[0]["object"] == "discount"
    body = revenue.revenue_analytics(months=3, now=NOW_DT)
    assert body["mrr"] == 78995
    assert body["arr"] == 947940
    assert body["arpa"] == 11285
    assert body["paying_tenants"] == 7
    assert body["active_subscriptions"] == 7
    assert body["revenue_by_plan"] == {"starter": 13500, "professional": 25575, "enterprise": 39920}
    assert body["churn_rate"] == 0.1429
    assert body["growth_rate"] is None  # no snapshot 30 days back

    # Invoices. At T0 (May): a 2900, b 99000, c 39920, d 4950 (once 50 %), e 7700, g 2900,
    #   h 7425 = 164795, plus f's and i's 0.00 trial invoices (paid, 0).
    # Renewals at T0 + 1 month (2026-06-28): a 2900, c 39920, d 9900, e 7700, g 2900, h 7425 = 70745.
    # i's first real invoice at T0 + 33 d (2026-06-30) fails: open, not paid. July: nothing yet.
    assert body["monthly_revenue"] == {"2026-05": 164795, "2026-06": 70745, "2026-07": 0}
    assert body["total_revenue"] == 164795 + 70745
    assert body["paid_invoices"] == 9 + 6
    assert body["total_invoices"] == 9 + 6 + 1


def test_growth_rate_against_the_snapshot_30_days_back(book):
    RevenueSnapshot.objects.create(date=NOW_DT.date() - dt.timedelta(days=31), mrr=70000)
    RevenueSnapshot.objects.create(date=NOW_DT.date() - dt.timedelta(days=40), mrr=1)
    # (78995 - 70000) / 70000 = 0.128500 → 0.1285 (the latest snapshot at least 30 days back)
    assert revenue.revenue_analytics(now=NOW_DT)["growth_rate"] == 0.1285


def test_snapshot_command_is_idempotent_and_reports(book, capsys):
    call_command("billing_revenue_snapshot", "--date", "2026-07-02")
    call_command("billing_revenue_snapshot", "--date", "2026-07-02")
    out = capsys.readouterr().out
    assert "created snapshot 2026-07-02" in out and "updated snapshot 2026-07-02" in out
    assert RevenueSnapshot.objects.count() == 1
    snapshot = RevenueSnapshot.objects.get()
    # Computed at the real time (after the clock's NOW): the repeating coupon and the trial of f
    # are read against today, so only the states that cannot move are pinned here.
    assert snapshot.arr == 12 * snapshot.mrr and snapshot.mrr > 0
    assert snapshot.by_plan["enterprise"] == 39920
    with pytest.raises(Exception, match="YYYY-MM-DD"):
        call_command("billing_revenue_snapshot", "--date", "July")
    assert DjstripeCustomer.objects.count() == 9


# --- the API ---------------------------------------------------------------------------------------
@pytest.fixture
def staff_token(db) -> str:
    staff = User.objects.create_superuser("staff@leanvibe.test", "staff-password-123")
    return str(tokens_issue(user=staff).access_token)


def test_analytics_api_is_staff_only_and_checks_months(api, staff_token, tenant_a):
    path = "/api/v1/billing/revenue/analytics"
    response = api.get(path, token=staff_token)
    assert response.status_code == 200, response.body
    body = response.body
    assert set(body) >= {
        "mrr",
        "arr",
        "total_revenue",
        "monthly_revenue",
        "growth_rate",
        "total_invoices",
        "paid_invoices",
        "churn_rate",
        "arpa",
        "revenue_by_plan",
        "tenants_by_status",
        "mrr_history",
    }
    assert (body["mrr"], body["arr"], body["total_revenue"], body["arpa"]) == (0, 0, 0, 0)
    assert body["churn_rate"] is None and body["growth_rate"] is None
    assert len(body["monthly_revenue"]) == 12
    assert body["tenants_by_status"] == {"tenant": {"active": 1}, "billing": {"none": 1}}
    assert len(api.get(f"{path}?months=36", token=staff_token).body["monthly_revenue"]) == 36
    for bad in ("0", "37", "x", "", "1.5"):
        bad_response = api.get(f"{path}?months={bad}", token=staff_token)
        assert bad_response.status_code == 400, bad
        assert set(bad_response.body) >= {"error", "detail"}
    assert api.get(f"{path}?other=1", token=staff_token).status_code == 400

    assert api.get(path).status_code == 401
    owner_token = tenant_a.login(api)
    assert api.get(path, host=tenant_a.host, token=owner_token).status_code in (401, 403)
    assert api.get(path, tenant_header=tenant_a.id, token=owner_token).status_code in (401, 403)
    assert api.get(path, token=owner_token).status_code in (401, 403)
    # Staff's token on a tenant's host: not the public host, so refused.
    assert api.get(path, host=tenant_a.host, token=staff_token).status_code in (401, 403)


def test_snapshot_history_in_the_api(api, staff_token):
    RevenueSnapshot.objects.create(date=dt.date(2026, 7, 1), mrr=100, arr=1200)
    RevenueSnapshot.objects.create(date=dt.date(2026, 7, 2), mrr=250, arr=3000)
    body = api.get("/api/v1/billing/revenue/analytics?months=1", token=staff_token).body
    assert body["mrr_history"] == [{"date": "2026-07-01", "mrr": 100}, {"date": "2026-07-02", "mrr": 250}]


# --- the console's dashboard ------------------------------------------------------------------------
DASHBOARD = "/admin/billing/revenuesnapshot/"


@pytest.fixture
def console(client, db):
    """A staff member signed in to the console with a real TOTP code (its second factor)."""
    staff = User.objects.create_superuser(email="console@leanvibe.test", password="staff-pass-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": staff.email, "password": "staff-pass-123", "otp_token": totp(device.bin_key)},
    )
    assert response.status_code == 302, response.content[:2000]
    return client


def _no_external_urls(html: str) -> None:
    urls = re.findall(r"""(?:src|href)=["'](https?:)?//""", html)
    assert not urls, urls
    assert '<script src="http' not in html


def test_dashboard_with_data_draws_svg_charts(console, book):
    for n, mrr in enumerate((50000, 64000, 78995)):
        RevenueSnapshot.objects.create(
            date=dt.date(2026, 6, 30) + dt.timedelta(days=n), mrr=mrr, arr=12 * mrr, by_plan={}
        )
    index = console.get("/admin/")
    assert DASHBOARD in index.content.decode()  # reachable from the console's index
    response = console.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="revenue-chart"') == 2
    assert "<polyline" in html and html.count("<circle") == 3 and "2026-07-02: $789.95" in html
    # Bars per plan (MRR now, at the real date: the forever coupon still applies to enterprise).
    assert html.count("<rect") == 3 and "Enterprise: $399.20" in html
    assert "Tenants by plan and status" in html and "revenue-empty" not in html
    _no_external_urls(html)


def test_dashboard_without_data_shows_the_empty_state(console):
    response = console.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'revenue-chart"' not in html and html.count('revenue-empty"') == 2
    assert "No snapshots yet" in html and "$0.00" in html
    _no_external_urls(html)


def test_dashboard_needs_staff_with_a_second_factor(client, db):
    assert client.get(DASHBOARD).status_code == 302
    User.objects.create_superuser(email="nofactor@leanvibe.test", password="staff-pass-123")
    client.login(email="nofactor@leanvibe.test", password="staff-pass-123")
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_analytics_queries_do_not_grow_with_the_book(db, stripe_local, catalog, django_assert_num_queries):
    with CaptureQueriesContext(connection) as empty:
        revenue.revenue_analytics(now=NOW_DT)
    clock = str(stripe.test_helpers.TestClock.create(frozen_time=T0, name="queries").id)
    for name in ("q1", "q2", "q3"):
        _subscribe(clock, name, [{"price": str(catalog["leanvibe_starter_month"].id)}])
    _mirror()
    with django_assert_num_queries(len(empty.captured_queries)):
        body = revenue.revenue_analytics(now=NOW_DT)
    assert body["mrr"] == 3 * 2900
