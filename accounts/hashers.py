"""The password hasher: Argon2id at OWASP's parameters (first in ``PASSWORD_HASHERS``).

PBKDF2 at Django's 1,000,000 iterations spends about 0.4 s of CPU per sign-in and per sign-up;
Argon2id at OWASP's minimum (19 MiB, two passes, one lane) costs tens of milliseconds and is
memory-hard, which is what makes guessing on GPUs expensive. Hashes made by the hashers listed
after it (PBKDF2) still verify, and ``User.check_password`` replaces them with this one at the
holder's next successful sign-in; so does an Argon2 hash with other parameters.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Django's Argon2 hasher (type ID, algorithm name ``argon2``, so Django's own class can
    still read these hashes) with OWASP's Password Storage Cheat Sheet parameters."""

    memory_cost = 19456  # KiB, i.e. 19 MiB
    time_cost = 2
    parallelism = 1
