"""Malformed JSON, wrong types, missing and unknown fields, huge bodies: a 4xx JSON error that
names the problem, never a 500, and nothing changed."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.core.signals import got_request_exception
from django.db import DatabaseError, transaction
from django.http import QueryDict
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.utils.datastructures import MultiValueDict
from django.utils.regex_helper import normalize
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.services import tokens_issue
from agents.models import Project


@pytest.fixture
def endpoints(api, tenant_a):
    token = tenant_a.login(api)
    project = api.post("/api/v1/projects", {"name": "Target"}, host=tenant_a.host, token=token).body
    ctx = {"host": tenant_a.host, "token": token}
    return {
        "signup": ("POST", "/api/v1/tenants", {}),
        "login": ("POST", "/api/v1/auth/login", {"host": tenant_a.host}),
        "project-create": ("POST", "/api/v1/projects", ctx),
        "project-update": ("PATCH", f"/api/v1/projects/{project['id']}", ctx),
        "usage-record": ("POST", "/api/v1/billing/usage", ctx),
    }


ALL = ["signup", "login", "project-create", "project-update", "usage-record"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
@pytest.mark.parametrize(
    "raw",
    ['{"name": "x"', "{'name': 'x'}", "nul", '{"a":1}}', "\x00\x01", '{"name": NaN}'],
)
def test_malformed_json_is_400(api, endpoints, endpoint, raw):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code == 400
    assert response.body["error"] == "malformed_request"
    assert "JSON" in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
@pytest.mark.parametrize("raw", [b"\xff\xfe\xfa", b'{"name": "\xc3\x28"}'])
def test_invalid_utf8_is_400(api, endpoints, endpoint, raw):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
@pytest.mark.parametrize("body", [[], ["name"], "name", 42, None, True])
def test_body_that_is_not_an_object_is_400(api, endpoints, endpoint, body):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw=__import__("json").dumps(body), **ctx)
    assert response.status_code == 400
    assert response.body["error"] in {"validation_error", "malformed_request"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "payload", "field"),
    [
        (
            "signup",
            {"organization_name": 42, "billing_email": "a@b.co", "admin_email": "a@b.co"},
            "organization_name",
        ),
        (
            "signup",
            {"organization_name": "X", "billing_email": ["a@b.co"], "admin_email": "a@b.co"},
            "billing_email",
        ),
        (
            "signup",
            {"organization_name": "X", "billing_email": "a@b.co", "admin_email": "a@b.co", "plan": 1},
            "plan",
        ),
        (
            "signup",
            {"organization_name": {"a": 1}, "billing_email": "a@b.co", "admin_email": "a@b.co"},
            "organization_name",
        ),
        ("login", {"email": 1, "password": "x"}, "email"),
        ("login", {"email": "a@b.co", "password": True}, "password"),
        ("login", {"email": "a@b.co", "password": None}, "password"),
        ("project-create", {"name": 123}, "name"),
        ("project-create", {"name": ["a"]}, "name"),
        ("project-create", {"name": "ok", "description": {"x": 1}}, "description"),
        ("project-create", {"name": None}, "name"),
        ("project-create", {"name": ""}, "name"),
        ("project-create", {"name": "x" * 101}, "name"),
        ("project-update", {"name": False}, "name"),
        ("project-update", {"status": "exploded"}, "status"),
        ("project-update", {"description": 7}, "description"),
        ("usage-record", {"metric_name": "ai_requests", "quantity": "3"}, "quantity"),
        ("usage-record", {"metric_name": "ai_requests", "quantity": False}, "quantity"),
        ("usage-record", {"metric_name": "ai_requests", "quantity": 0.5}, "quantity"),
        ("usage-record", {"metric_name": "storage_bytes", "quantity": 1}, "metric_name"),
        ("usage-record", {"metric_name": ["ai_requests"], "quantity": 1}, "metric_name"),
        ("usage-record", {"metric_name": "ai_requests", "quantity": 1, "metadata": 3}, "metadata"),
    ],
)
def test_wrong_types_and_values_are_400_naming_the_field(api, endpoints, endpoint, payload, field):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, payload, **ctx)
    assert response.status_code == 400
    assert response.body["error"] == "validation_error"
    assert field in response.body["fields"]
    assert field in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("endpoint", "payload", "missing"),
    [
        ("signup", {"billing_email": "a@b.co", "admin_email": "a@b.co"}, "organization_name"),
        ("signup", {"organization_name": "X", "admin_email": "a@b.co"}, "billing_email"),
        ("signup", {"organization_name": "X", "billing_email": "a@b.co"}, "admin_email"),
        ("login", {"email": "a@b.co"}, "password"),
        ("login", {"password": "x"}, "email"),
        ("project-create", {"description": "no name"}, "name"),
        ("usage-record", {"quantity": 1}, "metric_name"),
        ("usage-record", {"metric_name": "api_calls"}, "quantity"),
    ],
)
def test_missing_fields_are_400_naming_the_field(api, endpoints, endpoint, payload, missing):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, payload, **ctx)
    assert response.status_code == 400
    assert f"{missing}: This field is required." in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
def test_unknown_fields_are_400_naming_them(api, endpoints, endpoint):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, {"is_superuser": True, "schema_name": "public"}, **ctx)
    assert response.status_code == 400
    assert set(response.body["fields"]) >= {"is_superuser", "schema_name"}
    assert "is_superuser: Unknown field." in response.body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
def test_oversized_body_is_413(api, endpoints, endpoint, settings):
    method, path, ctx = endpoints[endpoint]
    body = '{"name": "' + "x" * (settings.API_MAX_BODY_BYTES + 10) + '"}'
    response = api.call(method, path, raw=body, **ctx)
    assert response.status_code == 413
    assert response.body["error"] == "payload_too_large"
    assert response.body["limit"] == settings.API_MAX_BODY_BYTES


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL)
def test_wrong_content_type_is_415(api, endpoints, endpoint):
    method, path, ctx = endpoints[endpoint]
    response = api.call(method, path, raw="name=x", content_type="application/x-www-form-urlencoded", **ctx)
    assert response.status_code == 415
    assert response.body["error"] == "unsupported_media_type"


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ['{"name": "\\ud800"}', '{"name": "nul\\u0000byte"}'])
def test_strings_postgres_cannot_store_are_400(api, endpoints, raw):
    method, path, ctx = endpoints["project-create"]
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code == 400
    assert "name" in response.body["fields"]


@pytest.mark.django_db
def test_deeply_nested_json_is_a_clean_400(api, endpoints):
    method, path, ctx = endpoints["project-create"]
    raw = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.call(method, path, raw=raw, **ctx)
    assert response.status_code in {400, 413}


@pytest.mark.django_db
def test_bad_input_changes_nothing(api, endpoints, tenant_a):
    from django_tenants.utils import schema_context

    method, path, ctx = endpoints["project-update"]
    api.call(method, path, {"name": 5, "status": "archived"}, **ctx)
    api.call(method, path, raw='{"name": "Changed"', **ctx)
    with schema_context(tenant_a.tenant.schema_name):
        target = Project.objects.get(name="Target")
        assert target.status == "active"


@pytest.mark.django_db
def test_unknown_api_path_is_json_404(api, tenant_a):
    assert api.get("/api/v1/nothing-here").body["error"] == "not_found"
    assert api.get("/api/v1/nothing-here", host=tenant_a.host).status_code == 404


# --- query parameters and path ids that reached a 500 (issue 6, section 6) ---------------------
# Python's str.isdigit() accepts "²", int() then refuses it; a bare `until` date one day before
# the end of the calendar overflowed; a date-time whose offset pushes it past year 9999 reached
# PostgreSQL. Each is a 400 (or the 404 of an id that cannot exist) now.


def _web_client(handle):
    browser = Client(HTTP_HOST=handle.host)
    response = browser.post("/accounts/login/", {"login": handle.owner_email, "password": handle.password})
    assert response.status_code == 302
    return browser


# Audit filters that reached a 500 before the strict parser (issue 6, section 6).
AUDIT_FILTER_500S = [
    ("limit", "²"),
    ("offset", "²"),
    ("actor", "²"),
    ("until", "9999-12-31"),
    ("since", "9999-12-31T23:59:59-23:59"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "value"), AUDIT_FILTER_500S)
def test_audit_events_api_refuses_what_reached_a_500(api, tenant_a, name, value):
    token = tenant_a.login(api)
    assert api.get("/api/v1/audit-events", host=tenant_a.host, token=token).status_code == 200
    response = api.get(f"/api/v1/audit-events?{urlencode({name: value})}", host=tenant_a.host, token=token)
    assert response.status_code == 400, response.body
    assert response.body["error"] == "invalid_filter"
    assert name in response.body["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "value"), AUDIT_FILTER_500S)
def test_audit_page_refuses_what_reached_a_500(tenant_a, name, value):
    browser = _web_client(tenant_a)
    response = browser.get("/audit/", {name: value})
    assert response.status_code == 400
    assert b"Audit log" in response.content


@pytest.mark.django_db
def test_ending_api_session_superscript_two_is_404(api, tenant_a):
    token = tenant_a.login(api)
    response = api.delete("/api/v1/auth/sessions/%C2%B2", host=tenant_a.host, token=token)
    assert response.status_code == 404
    assert response.body["error"] == "not_found"


@pytest.mark.django_db
def test_ending_web_session_superscript_two_is_a_message_not_a_500(tenant_a):
    browser = _web_client(tenant_a)
    response = browser.post("/account/sessions/²/end/")
    assert response.status_code == 302
    assert response["Location"].endswith("/account/sessions/")
    assert b"Session not found." in browser.get("/account/sessions/").content


# --- every route of both URL configurations: path ids and query parameters ---------------------
# The routes are read from the URL confs, so a new one is covered the day it is added. Every
# path parameter gets each bad value (GET and POST, PATCH and DELETE on the API too); every
# query parameter a route reads (recorded while it serves a first GET) gets each bad value.
# Signed in as the tenant's owner (tenant site) or as verified platform staff (public site).

BAD_VALUES = [
    "²",
    "٣",
    "-1",
    "0",
    str(2**63),
    "9" * 40,
    "9999-12-31",
    "9999-12-31T23:59:59-23:59",
    "\x00",
    "x" * 5000,
]
# Query parameters the admin's change lists read by iterating the query string (not one by one).
ADMIN_LIST_PARAMETERS = ["o", "p", "q", "status__exact", "plan__exact", "_to_field"]
_PARAMETER = re.compile(r"%\((\w+)\)s")


def route_templates(urlconf: str) -> list[str]:
    """Every route as a format string, e.g. ``api/v1/users/%(user_id)s``."""
    found: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for entry in patterns:
            for fmt, _params in normalize(entry.pattern.regex.pattern):
                if isinstance(entry, URLResolver):
                    walk(entry.url_patterns, prefix + fmt)
                else:
                    found.add(prefix + fmt)

    walk(get_resolver(urlconf).url_patterns, "")
    return sorted(found)


def _path(template: str, value: str) -> str:
    names = _PARAMETER.findall(template)
    return "/" + template % {name: quote(value, safe="") for name in names}


class RecordedQueryKeys:
    """Names read from any QueryDict while a request is served (Django's own accessors)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: set[str] = set()
        getitem, getlist = MultiValueDict.__getitem__, MultiValueDict.getlist
        keys = self.keys

        def record(container: MultiValueDict, key: object) -> None:
            if isinstance(container, QueryDict) and isinstance(key, str):
                keys.add(key)

        def recording_getitem(self: MultiValueDict, key: str) -> Any:
            record(self, key)
            return getitem(self, key)

        def recording_getlist(self: MultiValueDict, key: str, default: Any = None) -> Any:
            record(self, key)
            return getlist(self, key, default)

        def recording_contains(self: MultiValueDict, key: object) -> bool:
            record(self, key)
            return dict.__contains__(self, key)

        monkeypatch.setattr(MultiValueDict, "__getitem__", recording_getitem)
        monkeypatch.setattr(MultiValueDict, "getlist", recording_getlist)
        monkeypatch.setattr(MultiValueDict, "__contains__", recording_contains)


class Sweep:
    """Sends requests, collects every answer of 500 or more (and non-JSON API answers)."""

    def __init__(self, client: Client, sign_in: Callable[[], None]) -> None:
        self.client, self.sign_in = client, sign_in
        self.problems: list[str] = []
        self.sent = 0
        self._exception: BaseException | None = None
        got_request_exception.connect(self._record, dispatch_uid="bad-input-sweep")

    def _record(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        self._exception = sys.exc_info()[1]

    def close(self) -> None:
        got_request_exception.disconnect(dispatch_uid="bad-input-sweep")

    def send(self, method: str, path: str, query: dict[str, str] | None = None) -> Any:
        api = path.startswith("/api/v1/")
        target = f"{path}?{urlencode(query)}" if query else path
        body = "{}" if api and method in ("POST", "PATCH") else ""
        content_type = "application/json" if api else "application/x-www-form-urlencoded"
        self._exception = None
        # A database error inside the request must not abort the test's transaction and hide
        # every later finding: each request runs in a savepoint of its own.
        savepoint = transaction.savepoint()
        response = self.client.generic(method, target, body, content_type=content_type)
        try:
            transaction.savepoint_commit(savepoint)
        except DatabaseError:  # the transaction is aborted (or marked so): back to the savepoint
            transaction.set_rollback(False)
            transaction.savepoint_rollback(savepoint)
        self.sent += 1
        shown = f"{method} {target[:120]!r}"
        if response.status_code >= 500:
            self.problems.append(f"{shown} -> {response.status_code} {self._exception!r}")
        elif (
            api
            and response.status_code != 204
            and not response["Content-Type"].startswith("application/json")
        ):
            self.problems.append(f"{shown} -> {response.status_code} not JSON")
        return response

    def route(self, template: str, recorder: RecordedQueryKeys) -> None:
        self.sign_in()  # a previous route may have signed the client out
        api = template.startswith("api/v1/")
        if _PARAMETER.search(template):
            methods = ["GET", "POST", "PATCH", "DELETE"] if api else ["GET", "POST"]
            for value in BAD_VALUES:
                for method in methods:
                    self.send(method, _path(template, value))
        path = _path(template, "1")
        recorder.keys.clear()
        self.send("GET", path)
        names = set(recorder.keys)
        if template.startswith("admin/") and template.count("/") == 3 and "%" not in template:
            names |= set(ADMIN_LIST_PARAMETERS)
        for name in sorted(names):
            for value in BAD_VALUES:
                self.send("GET", path, {name: value})


def test_route_templates_cover_both_sites():
    tenant, public = route_templates("leanvibe.urls_tenant"), route_templates("leanvibe.urls_public")
    assert (
        "api/v1/auth/sessions/%(session_id)s" in tenant and "account/sessions/%(session_id)s/end/" in tenant
    )
    assert "audit/" in tenant and "accounts/confirm-email/%(key)s/" in tenant
    assert "admin/tenants/tenant/%(object_id)s/change/" in public and "metrics" in public
    assert _path("account/sessions/%(session_id)s/end/", "²") == "/account/sessions/%C2%B2/end/"


@pytest.mark.django_db
def test_every_tenant_route_survives_bad_path_ids_and_query_parameters(api, tenant_a, monkeypatch):
    token = tenant_a.login(api)
    with schema_context(tenant_a.tenant.schema_name):
        owner = User.objects.get(email=tenant_a.owner_email)
    browser = Client(
        HTTP_HOST=tenant_a.host, HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False
    )

    def sign_in() -> None:
        with schema_context(tenant_a.tenant.schema_name):
            browser.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")

    recorder = RecordedQueryKeys(monkeypatch)
    sweep = Sweep(browser, sign_in)
    seen: dict[str, set[str]] = {}
    try:
        for template in route_templates("leanvibe.urls_tenant"):
            sweep.route(template, recorder)
            seen[template] = set(recorder.keys)
    finally:
        sweep.close()
    # The recorder saw what the audit filters read (else this test would prove little).
    assert {"limit", "offset", "actor", "since", "until", "type"} <= seen["audit/"]
    assert {"limit", "offset", "actor", "since", "until", "type"} <= seen["api/v1/audit-events"]
    assert sweep.sent > 1000
    assert not sweep.problems, "\n".join(sweep.problems)


@pytest.mark.django_db
def test_every_public_route_survives_bad_path_ids_and_query_parameters(monkeypatch, settings):
    settings.SIGNUP_RATE = "100000/hour"
    staff = User.objects.create_superuser(email="staff@leanvibe.test", password="staff-pass-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    token = tokens_issue(user=staff).access_token
    console = Client(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)

    def sign_in() -> None:
        console.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
        session = console.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id  # the second factor, verified
        session.save()

    sign_in()
    assert console.get("/admin/tenants/tenant/").status_code == 200  # really inside the console

    recorder = RecordedQueryKeys(monkeypatch)
    sweep = Sweep(console, sign_in)
    try:
        for template in route_templates("leanvibe.urls_public"):
            sweep.route(template, recorder)
    finally:
        sweep.close()
    assert sweep.sent > 1000
    assert not sweep.problems, "\n".join(sweep.problems)


# --- what the sweep first found, each pinned ----------------------------------------------------


@pytest.mark.django_db
def test_nul_in_a_url_is_a_400_before_any_view(api, tenant_a):
    token = tenant_a.login(api)
    response = api.get("/api/v1/projects?status=%00", host=tenant_a.host, token=token)
    assert response.status_code == 400 and response.body["error"] == "bad_request"
    assert api.get("/api/v1/users/%00", host=tenant_a.host, token=token).status_code == 400
    page = _web_client(tenant_a).get("/accounts/oidc/%00/login/")
    assert page.status_code == 400 and b"could not be understood" in page.content


@pytest.mark.django_db
def test_tenant_list_filters_are_parsed(api):
    staff = User.objects.create_superuser(email="staff@leanvibe.test", password="staff-pass-123")
    token = tokens_issue(user=staff).access_token
    for query in ("status=%C2%B2", "plan=gold", "status=" + "x" * 5000):
        response = api.get(f"/api/v1/tenants?{query}", token=token)
        assert response.status_code == 400, query
        assert response.body["error"] == "invalid_filter"
    assert api.get("/api/v1/tenants?status=active&plan=starter", token=token).status_code == 200


@pytest.mark.django_db
def test_unknown_totp_device_pages_of_the_console_are_404(admin_client_verified):
    for view in ("config", "qrcode"):
        response = admin_client_verified.get(f"/admin/otp_totp/totpdevice/{2**63}/{view}/")
        assert response.status_code == 404


@pytest.fixture
def admin_client_verified(db):
    staff = User.objects.create_superuser(email="console@leanvibe.test", password="staff-pass-123")
    device = TOTPDevice.objects.create(user=staff, name="console", confirmed=True)
    console = Client()
    console.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    session = console.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert console.get("/admin/").status_code == 200
    return console
