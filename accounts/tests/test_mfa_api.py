"""Two-factor through the API: enrolment, sign-in with TOTP, recovery and email codes, removal,
replay and drift, encryption at rest, and the per-tenant namespace of used codes."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from accounts.mfa_adapter import ENCRYPTED_PREFIX, decrypt_text, encrypt_text
from accounts.models import AuditEvent, User
from accounts.tests.mfa_helpers import enrol_totp, login, totp_code, wait_away_from_step_boundary
from leanvibe import redis as lv_redis

pytestmark = pytest.mark.django_db


def _events(handle, type_):
    with schema_context(handle.tenant.schema_name):
        return list(AuditEvent.objects.filter(type=type_))


def test_setup_returns_secret_qr_and_codes_and_stays_pending_until_verified(api, tenant_a):
    token = tenant_a.login(api)
    setup = api.post("/api/v1/auth/mfa/setup", host=tenant_a.host, token=token)
    assert setup.status_code == 200
    body = setup.body
    assert len(base64.b32decode(body["secret"])) == 20
    assert body["qr_code"].startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(body["qr_code"].split(",", 1)[1])
    assert body["otpauth_url"].startswith("otpauth://totp/") and "issuer=LeanVibe" in body["otpauth_url"]
    assert len(body["backup_codes"]) == 10 and len(set(body["backup_codes"])) == 10
    with schema_context(tenant_a.tenant.schema_name):
        assert not Authenticator.objects.exists()
    # Not active yet: signing in needs no code.
    assert login(api, tenant_a).status_code == 200
    assert api.get("/api/v1/auth/mfa", host=tenant_a.host, token=token).body == {
        "enabled": False,
        "methods": [],
    }

    wrong = api.post("/api/v1/auth/mfa/verify", {"code": "000000"}, host=tenant_a.host, token=token)
    assert wrong.status_code == 400 and wrong.body["error"] == "invalid_mfa_code"
    wait_away_from_step_boundary()
    ok = api.post(
        "/api/v1/auth/mfa/verify", {"code": totp_code(body["secret"])}, host=tenant_a.host, token=token
    )
    assert ok.status_code == 200
    assert ok.body == {"enabled": True, "methods": ["totp", "recovery_code"]}
    assert len(_events(tenant_a, AuditEvent.Type.MFA_ENROLLED)) == 1
    again = api.post("/api/v1/auth/mfa/setup", host=tenant_a.host, token=token)
    assert again.status_code == 409 and again.body["error"] == "mfa_already_enabled"


def test_verify_without_setup_is_400(api, tenant_a):
    token = tenant_a.login(api)
    response = api.post("/api/v1/auth/mfa/verify", {"code": "123456"}, host=tenant_a.host, token=token)
    assert response.status_code == 400 and response.body["error"] == "mfa_setup_not_started"


def test_login_needs_the_code_refuses_a_wrong_one_and_a_replayed_one(api, tenant_a):
    secret = enrol_totp(api, tenant_a.host, tenant_a.login(api))["secret"]

    missing = login(api, tenant_a)
    assert missing.status_code == 422
    assert missing.body["error"] == "mfa_required" and missing.body["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in missing.body

    wrong = login(api, tenant_a, mfa_code="000000" if totp_code(secret) != "000000" else "111111")
    assert wrong.status_code == 401 and wrong.body["error"] == "invalid_mfa_code"
    assert len(_events(tenant_a, AuditEvent.Type.MFA_FAILED)) == 1

    wait_away_from_step_boundary()
    code = totp_code(secret)
    ok = login(api, tenant_a, mfa_code=code)
    assert ok.status_code == 200 and ok.body["access_token"]
    replay = login(api, tenant_a, mfa_code=code)
    assert replay.status_code == 401 and replay.body["error"] == "invalid_mfa_code"


def test_one_step_of_drift_is_accepted_two_are_not(api, tenant_a):
    secret = enrol_totp(api, tenant_a.host, tenant_a.login(api))["secret"]
    wait_away_from_step_boundary()
    assert login(api, tenant_a, mfa_code=totp_code(secret, +2)).status_code == 401
    assert login(api, tenant_a, mfa_code=totp_code(secret, -2)).status_code == 401
    assert login(api, tenant_a, mfa_code=totp_code(secret, +1)).status_code == 200
    # The enrolment used step -1's code: it cannot sign in afterwards either.
    assert login(api, tenant_a, mfa_code=totp_code(secret, -1)).status_code == 401


def test_a_used_code_is_remembered_as_long_as_it_stays_valid(api, tenant_a):
    """allauth alone remembers a used code for 30 s while drift keeps it valid for 90 s."""
    secret = enrol_totp(api, tenant_a.host, tenant_a.login(api))["secret"]
    wait_away_from_step_boundary()
    code = totp_code(secret)
    assert login(api, tenant_a, mfa_code=code).status_code == 200
    with schema_context(tenant_a.tenant.schema_name):
        user = User.objects.get(email=tenant_a.owner_email)
        auth = Authenticator.objects.get(user=user, type="totp")
        full_key = cache.make_key(TOTP(auth)._get_used_cache_key(code))
    ttl = lv_redis.client().ttl(full_key)
    assert ttl > 60, ttl


def test_a_recovery_code_works_once(api, tenant_a):
    codes = enrol_totp(api, tenant_a.host, tenant_a.login(api))["backup_codes"]
    ok = login(api, tenant_a, mfa_code=codes[3])
    assert ok.status_code == 200
    assert len(_events(tenant_a, AuditEvent.Type.RECOVERY_CODE_USED)) == 1
    again = login(api, tenant_a, mfa_code=codes[3])
    assert again.status_code == 401 and again.body["error"] == "invalid_mfa_code"
    assert login(api, tenant_a, mfa_code=codes[4]).status_code == 200


def test_repeated_wrong_codes_are_refused_with_429_even_before_a_right_one(api, tenant_a, settings):
    codes = enrol_totp(api, tenant_a.host, tenant_a.login(api))["backup_codes"]
    for _ in range(settings.MFA_MAX_FAILURES):
        assert login(api, tenant_a, mfa_code="99999999").status_code == 401
    blocked = login(api, tenant_a, mfa_code=codes[0])
    assert blocked.status_code == 429 and blocked.body["error"] == "rate_limited"
    assert blocked.body["retry_after"] > 0 and int(blocked["Retry-After"]) == blocked.body["retry_after"]


def test_removing_mfa_needs_a_current_code(api, tenant_a):
    token = tenant_a.login(api)
    setup = enrol_totp(api, tenant_a.host, token)
    refused = api.delete("/api/v1/auth/mfa", data={"code": "00000000"}, host=tenant_a.host, token=token)
    assert refused.status_code == 401
    missing = api.delete("/api/v1/auth/mfa", host=tenant_a.host, token=token)
    assert missing.status_code == 400
    removed = api.delete(
        "/api/v1/auth/mfa", data={"code": setup["backup_codes"][0]}, host=tenant_a.host, token=token
    )
    assert removed.status_code == 204
    assert len(_events(tenant_a, AuditEvent.Type.MFA_REMOVED)) == 1
    with schema_context(tenant_a.tenant.schema_name):
        assert not Authenticator.objects.exists()
    assert login(api, tenant_a).status_code == 200


def test_secrets_and_recovery_codes_are_encrypted_at_rest(api, tenant_a):
    setup = enrol_totp(api, tenant_a.host, tenant_a.login(api))
    with schema_context(tenant_a.tenant.schema_name), connection.cursor() as cursor:
        cursor.execute("SELECT type, data::text FROM mfa_authenticator")
        rows = dict(cursor.fetchall())
        stored_secret = Authenticator.objects.get(type="totp").data["secret"]
    assert set(rows) == {"totp", "recovery_codes"}
    raw = " ".join(rows.values())
    assert setup["secret"] not in raw and setup["secret"].lower() not in raw
    assert ENCRYPTED_PREFIX in rows["totp"] and ENCRYPTED_PREFIX in rows["recovery_codes"]
    assert not any(code in raw for code in setup["backup_codes"])
    assert decrypt_text(stored_secret) == setup["secret"]
    assert decrypt_text(encrypt_text("round trip")) == "round trip"
    assert encrypt_text("same") != encrypt_text("same")  # random IV: equal secrets do not show


def test_the_pending_setup_in_redis_is_encrypted(api, tenant_a):
    token = tenant_a.login(api)
    secret = api.post("/api/v1/auth/mfa/setup", host=tenant_a.host, token=token).body["secret"]
    client = lv_redis.client()
    values = [client.get(key) or b"" for key in client.scan_iter(f"*{settings.CACHE_KEY_PREFIX}*mfa.setup*")]
    assert values and not any(secret.encode() in value for value in values)


def test_encryption_key_comes_from_settings(settings):
    from cryptography.fernet import Fernet

    settings.MFA_ENCRYPTION_KEY = Fernet.generate_key().decode()
    stored = encrypt_text("JBSWY3DPEHPK3PXP")
    settings.MFA_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(Exception, match="cannot be decrypted"):
        decrypt_text(stored)


def test_used_codes_of_equal_user_ids_in_two_tenants_do_not_collide(api, tenant_a, tenant_b):
    """Both owners are user 1 of their own schema; allauth's key names only the user id."""
    with schema_context(tenant_a.tenant.schema_name):
        user_a = User.objects.get(email=tenant_a.owner_email)
    with schema_context(tenant_b.tenant.schema_name):
        user_b = User.objects.get(email=tenant_b.owner_email)
    assert user_a.pk == user_b.pk

    def mark(schema: str, user_id: int) -> bool:
        with schema_context(schema):
            probe = TOTP(Authenticator(user_id=user_id, type="totp", data={}))
            return probe._mark_code_used("123456")

    assert mark(tenant_a.tenant.schema_name, user_a.pk) is True
    assert mark(tenant_b.tenant.schema_name, user_b.pk) is True  # not blocked by tenant A's use
    assert mark(tenant_a.tenant.schema_name, user_a.pk) is False
    with schema_context(tenant_a.tenant.schema_name):
        assert tenant_a.tenant.schema_name in cache.make_key("k")


_SUBPROCESS = """
import os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "leanvibe.settings"
django.setup()
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
settings.CACHES["default"]["KEY_PREFIX"] = sys.argv[2]
from django.core.cache import caches
from django_tenants.utils import schema_context
from allauth.mfa.models import Authenticator
with schema_context(sys.argv[3]):
    auth = Authenticator.objects.get(type="totp", user__email=sys.argv[4])
    print("accepted" if auth.wrap().validate_code(sys.argv[5]) else "refused")
"""


def _other_process(handle, code: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _SUBPROCESS,
            connection.settings_dict["NAME"],
            settings.CACHES["default"]["KEY_PREFIX"],
            handle.tenant.schema_name,
            handle.owner_email,
            code,
        ],
        cwd=Path(settings.BASE_DIR),
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_replay_protection_holds_across_processes(api, make_tenant):
    handle = make_tenant("Crossproc Corp")
    try:
        secret = enrol_totp(api, handle.host, handle.login(api))["secret"]
        wait_away_from_step_boundary(margin=8.0)
        used_here = totp_code(secret, 0)
        assert login(api, handle, mfa_code=used_here).status_code == 200
        assert _other_process(handle, used_here) == "refused"
        used_there = totp_code(secret, +1)
        assert _other_process(handle, used_there) == "accepted"
        assert login(api, handle, mfa_code=used_there).status_code == 401
    finally:
        handle.tenant.delete(force_drop=True)


def test_email_codes_as_second_factor(api, tenant_a):
    token = tenant_a.login(api)
    started = api.post("/api/v1/auth/mfa/email", host=tenant_a.host, token=token)
    assert started.status_code == 202
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [tenant_a.owner_email]
    with schema_context(tenant_a.tenant.schema_name):
        from django_otp.plugins.otp_email.models import EmailDevice

        enrol_code = EmailDevice.objects.get().token
    assert enrol_code in mail.outbox[0].body
    # Not active before confirmation.
    assert login(api, tenant_a).status_code == 200
    bad = api.post("/api/v1/auth/mfa/email/verify", {"code": "x"}, host=tenant_a.host, token=token)
    assert bad.status_code == 400
    with schema_context(tenant_a.tenant.schema_name):
        EmailDevice.objects.update(throttling_failure_count=0, throttling_failure_timestamp=None)
    ok = api.post("/api/v1/auth/mfa/email/verify", {"code": enrol_code}, host=tenant_a.host, token=token)
    assert ok.status_code == 200 and ok.body == {"enabled": True, "methods": ["email"]}

    challenge = login(api, tenant_a)
    assert challenge.status_code == 422
    assert challenge.body["methods"] == ["email"] and challenge.body["email_sent"] is True
    assert len(mail.outbox) == 2
    # At most one email a minute, however often the password is sent.
    cooling = login(api, tenant_a)
    assert cooling.status_code == 422 and cooling.body["email_sent"] is False
    assert len(mail.outbox) == 2
    with schema_context(tenant_a.tenant.schema_name):
        login_code = EmailDevice.objects.get().token
    assert login_code in mail.outbox[1].body
    assert login(api, tenant_a, mfa_code=login_code).status_code == 200
    assert login(api, tenant_a, mfa_code=login_code).status_code == 401  # single use
