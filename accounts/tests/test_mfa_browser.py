"""In headless Chromium: an owner enrols an authenticator app from the two-factor pages (secret
read off the page, code computed with allauth's own TOTP functions), keeps the recovery codes,
then signs in with a wrong code, a right one, and later with a recovery code."""

from __future__ import annotations

import re
import time

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

from leanvibe.tests.browser import (
    ARTIFACTS,
    BROWSER_MARKS,
    PHONE,
    chromium,
    expect,
    new_page,
    provision,
    sign_in,
    sign_out,
    tenant_origin,
)

pytestmark = BROWSER_MARKS
EMAIL = "peter@initech.example"
PASSWORD = "orbital-mechanics-42"


def _counter() -> int:
    return int(time.time()) // mfa_settings.TOTP_PERIOD


def _code(secret: str, counter: int) -> str:
    """The code of ``secret`` for an explicit time step: each code the test sends is for a step no
    other code used, so allauth's replay protection never refuses it, and it is within the one
    step of drift the server accepts (the step is now, or the next one)."""
    return format_hotp_value(hotp_value(secret, counter))


def test_enrol_totp_and_sign_in_with_a_code_and_a_recovery_code(site_url: str) -> None:
    from allauth.mfa.models import Authenticator
    from django_tenants.utils import schema_context

    tenant = provision("Initech", EMAIL, PASSWORD)
    origin = tenant_origin(site_url, tenant)
    failed: list[str] = []

    with chromium() as browser:
        context, page = new_page(browser, failed)

        sign_in(page, origin, EMAIL, PASSWORD)
        expect(page).to_have_url(f"{origin}/")

        # Enrol: allauth may ask for the password again first (recent sign-in is enough today).
        page.goto(f"{origin}/accounts/2fa/totp/activate/")
        if "/reauthenticate/" in page.url:
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Confirm").click()
        expect(page).to_have_url(f"{origin}/accounts/2fa/totp/activate/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Activate Authenticator App")
        qr = page.locator("img[src^='data:image/svg+xml;base64,']")
        expect(qr).to_be_visible()
        secret_field = page.locator("#authenticator_secret")
        secret: str = secret_field.input_value()
        assert re.fullmatch(r"[A-Z2-7]{16,}=*", secret), secret
        assert qr.get_attribute("alt") == secret
        page.screenshot(path=str(ARTIFACTS / "mfa-activate.png"), full_page=True)

        # A wrong code is refused next to the field, and nothing is enrolled.
        page.get_by_label("Authenticator code").fill("000000")
        page.get_by_role("button", name="Activate").click()
        expect(page.locator("main")).to_contain_text("Incorrect code")
        page.screenshot(path=str(ARTIFACTS / "mfa-activate-error.png"), full_page=True)
        # The secret stays the same across the failed attempt (it lives in the session).
        assert page.locator("#authenticator_secret").input_value() == secret

        activation_step = _counter()
        page.get_by_label("Authenticator code").fill(_code(secret, activation_step))
        page.get_by_role("button", name="Activate").click()
        expect(page).to_have_url(f"{origin}/accounts/2fa/recovery-codes/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Recovery Codes")
        codes_text: str = page.locator("#recovery_codes").input_value()
        recovery_codes = codes_text.split()
        assert len(recovery_codes) == 10 and len(set(recovery_codes)) == 10, recovery_codes
        page.screenshot(path=str(ARTIFACTS / "mfa-recovery-codes.png"), full_page=True)
        sign_out(page)
        expect(page).to_have_url(f"{origin}/accounts/login/")

        # Password first, then the challenge; a wrong code comes back with an error.
        sign_in(page, origin, EMAIL, PASSWORD)
        expect(page).to_have_url(f"{origin}/accounts/2fa/authenticate/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Two-Factor Authentication")
        code_field = page.locator("input[name='code']")
        code_field.fill("000000")
        page.get_by_role("button", name="Sign In", exact=True).click()
        expect(page.locator("main")).to_contain_text("Incorrect code")
        expect(page).to_have_url(f"{origin}/accounts/2fa/authenticate/")
        page.screenshot(path=str(ARTIFACTS / "mfa-challenge-error.png"), full_page=True)
        # Not signed in yet: no account menu, no sign-out button.
        expect(page.get_by_role("navigation", name="Account").get_by_role("button")).to_have_count(0)

        # The next time step's code: never used, and within one step of drift of the server's
        # clock whether or not a step boundary passed since activation.
        sign_in_step = max(activation_step + 1, _counter())
        page.locator("input[name='code']").fill(_code(secret, sign_in_step))
        page.get_by_role("button", name="Sign In", exact=True).click()
        expect(page).to_have_url(f"{origin}/")
        expect(page.get_by_role("navigation", name="Account")).to_contain_text(EMAIL)
        page.screenshot(path=str(ARTIFACTS / "mfa-dashboard.png"), full_page=True)
        sign_out(page)
        expect(page).to_have_url(f"{origin}/accounts/login/")

        # And once more with a recovery code, on a phone-sized screen.
        page.set_viewport_size(PHONE)
        sign_in(page, origin, EMAIL, PASSWORD)
        expect(page).to_have_url(f"{origin}/accounts/2fa/authenticate/")
        page.screenshot(path=str(ARTIFACTS / "mfa-challenge-phone.png"), full_page=True)
        page.locator("input[name='code']").fill(recovery_codes[0])
        page.get_by_role("button", name="Sign In", exact=True).click()
        expect(page).to_have_url(f"{origin}/")
        context.close()

    assert failed == []
    with schema_context(tenant.schema_name):
        types = sorted(Authenticator.objects.values_list("type", flat=True))
        assert types == ["recovery_codes", "totp"]
        recovery = Authenticator.objects.get(type="recovery_codes").wrap()
        assert recovery_codes[0] not in recovery.get_unused_codes()
        assert len(recovery.get_unused_codes()) == 9
