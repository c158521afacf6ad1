"""``/api/v1/users``: adding members, roles, deactivation, the role-escalation and last-owner
rules, the plan's user limit, and isolation between tenants."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from accounts.models import AuditEvent, AuthToken, Role
from accounts.tests.member_helpers import PASSWORD, Org


@pytest.fixture
def org(api, tenant_a):
    return Org(api, tenant_a)


# --- adding members ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_adds_a_member_whose_password_is_hashed(org):
    response = org.call(
        "POST",
        "/api/v1/users",
        {"email": "Dev@Example.com", "username": "dev", "password": PASSWORD},
        remote_addr="203.0.113.9",
    )

    assert response.status_code == 201
    assert set(response.body) == {"id", "email", "username", "role", "is_active"}
    assert response.body | {"id": 0} == {
        "id": 0,
        "email": "dev@example.com",
        "username": "dev",
        "role": "member",
        "is_active": True,
    }
    user = org.user("dev@example.com")
    assert user.password != PASSWORD and user.check_password(PASSWORD)
    # The new member can sign in with it.
    assert org.login("dev@example.com")
    [event] = org.audit(AuditEvent.Type.MEMBER_ADDED)
    assert event.actor.email == org.handle.owner_email
    assert event.target_user.email == "dev@example.com"
    assert event.ip_address == "203.0.113.9"


@pytest.mark.django_db
def test_email_already_registered_is_refused_whatever_its_case(org):
    org.add("dev@example.com")

    response = org.call("POST", "/api/v1/users", {"email": "DEV@example.com", "password": PASSWORD})

    assert response.status_code == 400
    assert response.body == {"error": "email_taken", "detail": "Email already registered"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "too short"), ("12345678901", "entirely numeric"), ("password123", "too common")],
)
def test_passwords_go_through_djangos_validators(org, password, message):
    response = org.call("POST", "/api/v1/users", {"email": "weak@example.com", "password": password})

    assert response.status_code == 400
    assert response.body["error"] == "validation_error"
    assert message in response.body["detail"]
    assert org.users_count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"email": "x@example.com"},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "x@example.com", "password": PASSWORD, "role": "superuser"},
        {"email": "x@example.com", "password": PASSWORD, "is_staff": True},
        {"email": "x@example.com", "password": 12345678},
        [],
    ],
)
def test_bad_input_is_a_400(org, body):
    response = org.call("POST", "/api/v1/users", body)

    assert response.status_code == 400
    assert response.body["error"] in {"validation_error", "malformed_request"}
    assert org.users_count() == 1


@pytest.mark.django_db
def test_the_plans_user_limit_applies(org):
    org.add("one@example.com")
    org.add("two@example.com")  # starter: 3 users with the owner

    response = org.call("POST", "/api/v1/users", {"email": "three@example.com", "password": PASSWORD})

    assert response.status_code == 403
    assert response.body["error"] == "quota_exceeded"
    assert response.body["limit"] == 3
    assert org.users_count() == 3


# --- reading --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_members_may_read_the_list_of_colleagues(org):
    _, member_token = org.add_and_login("dev@example.com")

    listed = org.call("GET", "/api/v1/users", token=member_token)
    one = org.call("GET", f"/api/v1/users/{org.owner_id}", token=member_token)

    assert listed.status_code == 200
    assert sorted(u["email"] for u in listed.body["results"]) == ["dev@example.com", org.handle.owner_email]
    assert one.status_code == 200 and one.body["role"] == "owner"


@pytest.mark.django_db
@pytest.mark.parametrize("user_id", ["999999", "abc", "-1", "99999999999999999999999"])
def test_unknown_user_is_404(org, user_id):
    response = org.call("GET", f"/api/v1/users/{user_id}")

    assert response.status_code == 404
    assert response.body == {"error": "not_found", "detail": "User not found."}


# --- role escalation --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_member_calling_admin_endpoints_is_refused(org):
    colleague = org.add("colleague@example.com")
    _, member_token = org.add_and_login("dev@example.com")
    me = org.user_id("dev@example.com")

    calls = [
        ("POST", "/api/v1/users", {"email": "new@example.com", "password": PASSWORD}),
        ("PATCH", f"/api/v1/users/{colleague['id']}", {"role": "member"}),
        ("PATCH", f"/api/v1/users/{me}", {"role": "admin"}),
        ("PATCH", f"/api/v1/users/{org.owner_id}", {"is_active": False}),
        ("DELETE", f"/api/v1/users/{colleague['id']}", None),
        ("GET", "/api/v1/invitations", None),
        ("POST", "/api/v1/invitations", {"email": "new@example.com"}),
    ]
    for method, path, body in calls:
        response = org.call(method, path, body, token=member_token)
        assert response.status_code == 403, (method, path)
        assert response.body["error"] == "permission_denied"
    assert org.user("dev@example.com").role == Role.MEMBER
    assert org.user("colleague@example.com").is_active
    assert org.users_count() == 3


@pytest.mark.django_db
def test_an_admin_cannot_make_owners_nor_touch_owners(org):
    member = org.add("dev@example.com")
    org.add("admin@example.com", "admin")
    admin_token = org.login("admin@example.com")
    admin_id = org.user_id("admin@example.com")

    refused = [
        ("POST", "/api/v1/users", {"email": "o2@example.com", "password": PASSWORD, "role": "owner"}),
        ("PATCH", f"/api/v1/users/{member['id']}", {"role": "owner"}),
        ("PATCH", f"/api/v1/users/{admin_id}", {"role": "owner"}),
        ("PATCH", f"/api/v1/users/{org.owner_id}", {"role": "admin"}),
        ("PATCH", f"/api/v1/users/{org.owner_id}", {"is_active": False}),
        ("DELETE", f"/api/v1/users/{org.owner_id}", None),
    ]
    for method, path, body in refused:
        response = org.call(method, path, body, token=admin_token)
        assert response.status_code == 403, (method, path, response.body)
        assert response.body["error"] == "permission_denied"
    assert org.user(org.handle.owner_email).role == Role.OWNER
    assert org.user(org.handle.owner_email).is_active
    assert org.user("admin@example.com").role == Role.ADMIN
    assert org.users_count() == 3

    # What admins may do: manage members and admins.
    promoted = org.call("PATCH", f"/api/v1/users/{member['id']}", {"role": "admin"}, token=admin_token)
    assert promoted.status_code == 200 and promoted.body["role"] == "admin"


@pytest.mark.django_db
def test_an_admin_demoting_the_last_owner_is_refused(org):
    org.add("admin@example.com", "admin")
    admin_token = org.login("admin@example.com")

    response = org.call("PATCH", f"/api/v1/users/{org.owner_id}", {"role": "member"}, token=admin_token)

    assert response.status_code == 403
    assert org.user(org.handle.owner_email).role == Role.OWNER


@pytest.mark.django_db
def test_the_last_owner_cannot_demote_themselves(org):
    response = org.call("PATCH", f"/api/v1/users/{org.owner_id}", {"role": "admin"})

    assert response.status_code == 409
    assert response.body["error"] == "last_owner"
    assert "at least one active owner" in response.body["detail"]
    assert org.user(org.handle.owner_email).role == Role.OWNER


@pytest.mark.django_db
def test_nobody_deactivates_themselves(org):
    response = org.call("DELETE", f"/api/v1/users/{org.owner_id}")

    assert response.status_code == 400
    assert response.body["error"] == "cannot_deactivate_self"
    assert org.user(org.handle.owner_email).is_active


@pytest.mark.django_db
def test_with_two_owners_one_may_step_down_but_not_the_second(org):
    second = org.add("second@example.com", "owner")
    second_token = org.login("second@example.com")

    # The first owner steps down: the second remains.
    stepped_down = org.call("PATCH", f"/api/v1/users/{org.owner_id}", {"role": "admin"})
    assert stepped_down.status_code == 200
    # Now the second is the last one: it can neither step down nor be removed by the former owner.
    own = org.call("PATCH", f"/api/v1/users/{second['id']}", {"role": "member"}, token=second_token)
    assert own.status_code == 409 and own.body["error"] == "last_owner"
    by_admin = org.call("DELETE", f"/api/v1/users/{second['id']}")
    assert by_admin.status_code == 403
    assert org.user("second@example.com").role == Role.OWNER
    events = org.audit(AuditEvent.Type.MEMBER_ROLE_CHANGED)
    assert [(e.target_user.email, e.data) for e in events] == [
        (org.handle.owner_email, {"old_role": "owner", "new_role": "admin"})
    ]


@pytest.mark.django_db
def test_an_owner_deactivating_the_other_owner_keeps_one(org):
    second = org.add("second@example.com", "owner")

    assert org.call("DELETE", f"/api/v1/users/{second['id']}").status_code == 204
    # The only active owner left: a deactivated owner does not count.
    response = org.call("PATCH", f"/api/v1/users/{org.owner_id}", {"role": "member"})
    assert response.status_code == 409


# --- deactivation ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_deactivation_revokes_tokens_at_once_and_reactivation_restores_sign_in(org):
    member, member_token = org.add_and_login("dev@example.com")
    assert org.call("GET", "/api/v1/projects", token=member_token).status_code == 200

    deleted = org.call("DELETE", f"/api/v1/users/{member['id']}", remote_addr="198.51.100.7")

    assert deleted.status_code == 204
    assert org.call("GET", "/api/v1/projects", token=member_token).status_code == 401
    with schema_context(org.handle.tenant.schema_name):
        assert not AuthToken.objects.filter(user_id=member["id"], revoked_at__isnull=True).exists()
    login = org.api.post(
        "/api/v1/auth/login", {"email": "dev@example.com", "password": PASSWORD}, host=org.host
    )
    assert login.status_code == 401
    shown = org.call("GET", f"/api/v1/users/{member['id']}").body
    assert shown["is_active"] is False
    [event] = org.audit(AuditEvent.Type.MEMBER_DEACTIVATED)
    assert (event.actor.email, event.target_user.email, event.ip_address) == (
        org.handle.owner_email,
        "dev@example.com",
        "198.51.100.7",
    )

    reactivated = org.call("PATCH", f"/api/v1/users/{member['id']}", {"is_active": True})

    assert reactivated.status_code == 200 and reactivated.body["is_active"] is True
    assert org.call("GET", "/api/v1/projects", token=member_token).status_code == 401  # old token stays dead
    assert org.login("dev@example.com")
    assert len(org.audit(AuditEvent.Type.MEMBER_REACTIVATED)) == 1


@pytest.mark.django_db
def test_reactivation_counts_against_the_user_limit(org):
    first = org.add("one@example.com")
    org.add("two@example.com")
    assert org.call("DELETE", f"/api/v1/users/{first['id']}").status_code == 204
    org.add("three@example.com")  # the freed place is taken

    response = org.call("PATCH", f"/api/v1/users/{first['id']}", {"is_active": True})

    assert response.status_code == 403
    assert response.body["error"] == "quota_exceeded"
    assert org.user("one@example.com").is_active is False


@pytest.mark.django_db
def test_patch_changes_username_and_refuses_bad_values(org):
    member = org.add("dev@example.com")
    path = f"/api/v1/users/{member['id']}"

    renamed = org.call("PATCH", path, {"username": "Ada"})
    assert renamed.status_code == 200 and renamed.body["username"] == "Ada"
    for body in ({"role": "root"}, {"is_active": "no"}, {"email": "x@example.com"}, {"is_active": 1}):
        response = org.call("PATCH", path, body)
        assert response.status_code == 400, body
    assert org.user("dev@example.com").is_active


# --- isolation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_another_tenants_admin_cannot_see_or_touch_users(api, tenant_a, tenant_b):
    a, b = Org(api, tenant_a), Org(api, tenant_b)
    a_member = a.add("secret-dev@example.com")
    assert a_member["id"] != b.owner_id  # ids repeat across schemas; this one is A's only

    listed = b.call("GET", "/api/v1/users").body["results"]
    assert [u["email"] for u in listed] == [tenant_b.owner_email]
    path = f"/api/v1/users/{a_member['id']}"
    for ctx in ({"host": b.host}, {"tenant_header": b.handle.id}):
        for method, body in (("GET", None), ("PATCH", {"role": "admin"}), ("DELETE", None)):
            response = api.call(method, path, body, token=b.owner_token, **ctx)
            assert response.status_code == 404, (method, ctx)
    # B's token is unknown in A's schema.
    for method, body in (("GET", None), ("PATCH", {"role": "admin"}), ("DELETE", None)):
        assert api.call(method, path, body, host=a.host, token=b.owner_token).status_code == 401
    assert api.call("GET", "/api/v1/users", host=a.host, token=b.owner_token).status_code == 401
    # Creating in B never lands in A: the same email is free in B.
    assert b.add("secret-dev@example.com")["email"] == "secret-dev@example.com"
    assert a.user("secret-dev@example.com").role == Role.MEMBER and a.user("secret-dev@example.com").is_active
    assert a.users_count() == 2
