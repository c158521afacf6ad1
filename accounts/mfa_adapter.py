"""allauth's MFA adapter, made to encrypt what it stores.

allauth keeps TOTP secrets and the recovery-code seed in ``Authenticator.data`` and passes them
through ``encrypt()``/``decrypt()``, which by default do nothing. Here they are Fernet tokens
(AES-128-CBC with an HMAC-SHA256), keyed by ``MFA_ENCRYPTION_KEY`` or, when that is empty, by a
key derived from ``SECRET_KEY``. A read of the database alone no longer yields codes.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from allauth.mfa.adapter import DefaultMFAAdapter
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Values written by this adapter start with this marker, so a value stored in the clear (before
# encryption was turned on) is still readable and is recognisably not encrypted.
ENCRYPTED_PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(key: str, secret_key: str) -> Fernet:
    if key:
        try:
            return Fernet(key.encode())
        except ValueError as exc:
            raise ImproperlyConfigured(
                "MFA_ENCRYPTION_KEY must be 32 bytes in urlsafe base64 (Fernet.generate_key())."
            ) from exc
    derived = hashlib.sha256(b"leanvibe.mfa.encryption:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def mfa_fernet() -> Fernet:
    return _fernet(settings.MFA_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt_text(text: str) -> str:
    return ENCRYPTED_PREFIX + mfa_fernet().encrypt(text.encode()).decode("ascii")


def decrypt_text(stored: str) -> str:
    if not stored.startswith(ENCRYPTED_PREFIX):
        return stored
    try:
        return mfa_fernet().decrypt(stored[len(ENCRYPTED_PREFIX) :].encode("ascii")).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored MFA secret cannot be decrypted: MFA_ENCRYPTION_KEY (or SECRET_KEY) changed."
        ) from exc


class MfaAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return encrypt_text(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_text(encrypted_text)


def harden_totp_replay_window() -> None:
    """Remember a used TOTP code for as long as it stays valid.

    allauth marks a code used for one period (30 s), but with ``MFA_TOTP_TOLERANCE = 1`` a code
    is accepted for three periods: it could be replayed 30 s later. The mark's key is allauth's
    own (per user, in the tenant-namespaced cache); only its lifetime changes. Called from
    ``AccountsConfig.ready``.
    """
    from allauth.mfa import app_settings as mfa_settings
    from allauth.mfa.totp.internal.auth import TOTP
    from django.core.cache import cache

    def _mark_code_used(self: TOTP, code: str) -> bool:
        window = mfa_settings.TOTP_PERIOD * (2 * mfa_settings.TOTP_TOLERANCE + 1)
        return bool(cache.add(self._get_used_cache_key(code), "y", timeout=window))

    TOTP._mark_code_used = _mark_code_used  # type: ignore[method-assign]
