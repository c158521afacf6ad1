"""Canonical email addresses live in the kernel (``leanvibe.emails``), where ``tenants`` can use
them too; this name stays for the migrations and imports that name it."""

from leanvibe.emails import (
    CanonicalEmailField,
    CanonicalEmailFormField,
    CanonicalEmailSerializerField,
    email_canonical,
)

__all__ = [
    "CanonicalEmailField",
    "CanonicalEmailFormField",
    "CanonicalEmailSerializerField",
    "email_canonical",
]
