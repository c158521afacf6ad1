"""Emails are canonical (``accounts.emails.email_canonical``: NFKC, then case-folded): one form
stored, looked up, throttled and compared, so a look-alike address is either the same account or
plainly another, never a way past an account's lock.

Before, the login looked users up with PostgreSQL's ``UPPER``, which folds ``\\u0131`` (dotless i)
and ``\\u017f`` (long s) into ASCII while Python's lower-casing (the lock's key) does not:
``k\\u0131ss@`` signed in as ``kiss@`` past ``kiss@``'s lock.
"""

from __future__ import annotations

import importlib

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps
from django.db import connection
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import Invitation, Role, User
from accounts.services import user_create
from accounts.tests.member_helpers import PASSWORD, Org, last_accept_link
from accounts.tests.mfa_helpers import totp_now

pytestmark = pytest.mark.django_db

KISS = "kiss@example.com"
DOTLESS = "k\u0131ss@example.com"  # dotless i: another letter, another address
LONG_S = "ki\u017fs@example.com"  # long s: NFKC makes it "s", the same address as KISS
KELVIN = "\u212aiss@example.com"  # the Kelvin sign: NFKC makes it "K", the same address
FULLWIDTH = "\uff2b\uff29\uff33\uff33@example.com"  # the same address in fullwidth letters
LIGATURE = "\ufb01nance@example.com"  # the "fi" ligature
FINANCE = "finance@example.com"
ESZETT = "stra\u00dfe@example.com"
STRASSE = "strasse@example.com"
LIMIT = 3


@pytest.fixture(autouse=True)
def _policy(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_IP_LIMIT = 50
    settings.LOGIN_FAILURE_WINDOW = 60
    settings.LOGIN_FAILURE_DELAY = 0


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


def _login(api, handle, email, password=PASSWORD, ip="203.0.113.40"):
    return api.post(
        "/api/v1/auth/login", {"email": email, "password": password}, host=handle.host, remote_addr=ip
    )


def _lock(api, handle, email):
    for _ in range(LIMIT):
        last = _login(api, handle, email, "wrong-password-x")
    assert last.status_code == 429


# --- sign-in and the lock ---------------------------------------------------------------------
def test_a_look_alike_cannot_sign_in_past_the_accounts_lock(api, org):
    org.add(KISS)
    _lock(api, org.handle, KISS)
    assert _login(api, org.handle, KISS).status_code == 429
    # The dotless i is another address: it is not kiss@'s account, so no token, locked or not.
    response = _login(api, org.handle, DOTLESS)
    assert response.status_code == 401 and "access_token" not in response.body


@pytest.mark.parametrize("variant", [FULLWIDTH, LONG_S, KELVIN, "KISS@EXAMPLE.COM"])
def test_variants_of_one_address_are_one_account_and_share_its_lock(api, org, variant):
    org.add(KISS)
    assert _login(api, org.handle, variant).status_code == 200
    _lock(api, org.handle, variant)
    assert _login(api, org.handle, KISS).status_code == 429


def test_the_web_form_looks_up_and_locks_the_canonical_address(org):
    org.add(KISS)
    browser = Client(HTTP_HOST=org.host, REMOTE_ADDR="203.0.113.41")
    assert browser.post("/accounts/login/", {"login": DOTLESS, "password": PASSWORD}).status_code == 200
    assert browser.get("/").status_code == 302  # not signed in as kiss@
    for _ in range(LIMIT):
        last = browser.post("/accounts/login/", {"login": LONG_S, "password": "wrong-password-x"})
    assert last.status_code == 429
    for variant in (KISS, FULLWIDTH, KELVIN):
        assert browser.post("/accounts/login/", {"login": variant, "password": PASSWORD}).status_code == 429


def test_the_web_form_signs_a_variant_in_as_the_account(org):
    org.add(KISS)
    browser = Client(HTTP_HOST=org.host)
    assert browser.post("/accounts/login/", {"login": KELVIN, "password": PASSWORD}).status_code == 302
    assert browser.get("/").status_code == 200


# --- uniqueness: members, invitations, sign-up, the admin console -----------------------------
@pytest.mark.parametrize(
    ("existing", "variant"),
    [
        (KISS, FULLWIDTH),
        (KISS, LONG_S),
        (KISS, KELVIN),
        (FINANCE, LIGATURE),
        (STRASSE, ESZETT),
        (ESZETT, STRASSE),
    ],
)
def test_an_address_colliding_with_a_member_is_taken(org, existing, variant):
    org.add(existing)
    response = org.call("POST", "/api/v1/users", {"email": variant, "password": PASSWORD})
    assert response.status_code == 400 and response.body["error"] == "email_taken", response.body
    assert org.users_count() == 2


def test_addresses_are_stored_canonical(org):
    added = org.add("Stra\u00dfe@Example.COM")
    assert added["email"] == STRASSE
    with schema_context(org.handle.tenant.schema_name):
        assert User.objects.get(pk=added["id"]).email == STRASSE
        assert EmailAddress.objects.get(user_id=added["id"]).email == STRASSE


def test_a_different_canonical_address_is_a_different_account(api, org):
    org.add(KISS)
    org.add(DOTLESS, role=Role.MEMBER)
    kiss, dotless = org.user(KISS), org.user(DOTLESS)
    assert kiss.pk != dotless.pk
    assert _login(api, org.handle, DOTLESS).status_code == 200


def test_invitations_use_the_canonical_address(org, django_capture_on_commit_callbacks):
    org.add(KISS)
    taken = org.call("POST", "/api/v1/invitations", {"email": FULLWIDTH})
    assert taken.status_code == 400 and taken.body["error"] == "email_taken"
    with django_capture_on_commit_callbacks(execute=True):
        sent = org.call("POST", "/api/v1/invitations", {"email": ESZETT})
    assert sent.status_code == 201 and sent.body["email"] == STRASSE
    again = org.call("POST", "/api/v1/invitations", {"email": "STRASSE@example.com"})
    assert again.status_code == 400 and again.body["error"] == "invitation_pending"
    with schema_context(org.handle.tenant.schema_name):
        assert Invitation.objects.get().email == STRASSE
    _, secret = last_accept_link()
    accepted = Client().post(
        f"/invitations/accept/{secret}/",
        {"username": "Strasse", "password1": PASSWORD, "password2": PASSWORD},
        HTTP_HOST=org.host,
    )
    assert accepted.status_code == 302, accepted.content[:1000]
    assert org.user(STRASSE).email == STRASSE


def test_sign_up_stores_the_canonical_address(api):
    response = api.post(
        "/api/v1/tenants",
        {
            "organization_name": "Canonical Corp",
            "billing_email": "billing@canonical.test",
            "admin_email": "\uff2f\uff37\uff2e\uff25\uff32@Canonical.test",
            "admin_password": "correct-horse-battery-staple",
        },
    )
    assert response.status_code == 201, response.body
    with schema_context(response.body["subdomain"]):
        assert User.objects.get().email == "owner@canonical.test"
        assert EmailAddress.objects.get().email == "owner@canonical.test"
    login = api.post(
        "/api/v1/auth/login",
        {"email": "OWNER@canonical.test", "password": "correct-horse-battery-staple"},
        host=response.body["domain"],
    )
    assert login.status_code == 200


def test_the_sign_up_page_stores_the_canonical_address(client):
    response = client.post(
        "/signup/",
        {
            "organization_name": "Page Corp",
            "admin_email": "ki\u017fs@Page.test",
            "admin_password": "correct-horse-battery-staple",
            "plan": "starter",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    with schema_context("page-corp"):
        assert User.objects.get().email == "kiss@page.test"


def test_the_email_page_stores_the_canonical_address(org):
    org.add(KISS)
    org.add("someone@example.com")
    browser = Client(HTTP_HOST=org.host)
    signed_in = browser.post("/accounts/login/", {"login": "someone@example.com", "password": PASSWORD})
    assert signed_in.status_code == 302
    browser.post("/accounts/email/", {"action_add": "", "email": LONG_S})
    with schema_context(org.handle.tenant.schema_name):
        assert not EmailAddress.objects.filter(email=LONG_S).exists()
        # allauth lets an unverified claim on another member's address exist (so as not to say
        # whose it is); it is stored canonical like every address.
        claim = EmailAddress.objects.get(user__email="someone@example.com", email=KISS)
        assert not claim.verified
    other = Client(HTTP_HOST=org.host)
    assert other.post("/accounts/login/", {"login": LONG_S, "password": PASSWORD}).status_code == 302
    with schema_context(org.handle.tenant.schema_name):  # sessions live in the tenant's schema
        assert other.session["_auth_user_id"] == str(org.user(KISS).pk)


def test_the_admin_console_refuses_a_colliding_staff_address(client):
    staff = User.objects.create_superuser(email="staff@leanvibe.test", password="staff-pass-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    signed_in = client.post(
        "/admin/login/?next=/admin/",
        {"username": "staff@leanvibe.test", "password": "staff-pass-123", "otp_token": totp_now(device)},
    )
    assert signed_in.status_code == 302
    response = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "\uff33\uff34\uff21\uff26\uff26@leanvibe.test",
            "usable_password": "true",
            "password1": "another-staff-pass-1",
            "password2": "another-staff-pass-1",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["email"]
    assert "already exists" in " ".join(errors), errors  # taken, not "invalid"
    assert User.objects.count() == 1
    added = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "Stra\u00dfe@LeanVibe.test",
            "usable_password": "true",
            "password1": "another-staff-pass-1",
            "password2": "another-staff-pass-1",
        },
    )
    assert added.status_code == 302
    assert User.objects.filter(email="strasse@leanvibe.test").exists()


# --- existing rows: the 0004 migration ---------------------------------------------------------
def test_the_migration_canonicalises_existing_rows_and_leaves_collisions(tenant_a):
    migration = importlib.import_module("accounts.migrations.0004_canonical_emails")
    with schema_context(tenant_a.tenant.schema_name):
        plain = user_create(email="plain@example.com", password=None)
        eszett = user_create(email="eszett@example.com", password=None)
        taken = user_create(email="taken@example.com", password=None)
        clash = user_create(email="clash@example.com", password=None)
        with connection.cursor() as cursor:  # rows as an older version stored them
            cursor.execute(
                "UPDATE accounts_user SET email = %s WHERE id = %s", ["Plain@Example.com", plain.pk]
            )
            cursor.execute(
                "UPDATE accounts_user SET email = %s WHERE id = %s", ["stra\u00dfe@x.test", eszett.pk]
            )
            cursor.execute(
                "UPDATE accounts_user SET email = %s WHERE id = %s", ["tu\u017fs@x.test", taken.pk]
            )
            cursor.execute("UPDATE accounts_user SET email = %s WHERE id = %s", ["tuss@x.test", clash.pk])
        EmailAddress.objects.create(user=eszett, email="stra\u00dfe@x.test", primary=True, verified=True)
        migration.canonicalise_emails(apps, connection.schema_editor())
        emails = dict(User.objects.values_list("pk", "email"))
        assert emails[plain.pk] == "plain@example.com"
        assert emails[eszett.pk] == "strasse@x.test"
        assert emails[clash.pk] == "tuss@x.test"  # already canonical: keeps it
        assert emails[taken.pk] == "tu\u017fs@x.test"  # would collide: left for an operator
        assert EmailAddress.objects.get(user=eszett).email == "strasse@x.test"
