"""Emails become canonical (accounts.emails.email_canonical: NFKC, then case-folded).

The ``Lower("email")`` unique constraint goes: ``User.email`` is stored canonical and its
``unique=True`` is the uniqueness of the canonical value (PostgreSQL's ``lower``/``upper`` fold
case differently from Python). Existing rows are canonicalised — users, allauth's addresses and
invitations — in every schema this runs in. A row whose canonical form already belongs to
another row is left as it is and logged: an operator decides which account keeps the address
(until then that account cannot sign in with a password, since sign-in looks the canonical
form up).
"""

import logging
from collections import defaultdict

from django.db import IntegrityError, migrations, models, transaction
from django.utils import timezone

import accounts.emails
from accounts.emails import email_canonical

logger = logging.getLogger(__name__)


def _canonicalise_rows(model, label, schema):
    for pk, email in model.objects.order_by("pk").values_list("pk", "email"):
        canonical = email_canonical(email)
        if canonical == email:
            continue
        try:
            with transaction.atomic():
                model.objects.filter(pk=pk).update(email=canonical)
        except IntegrityError:
            logger.warning(
                "%s %s in schema %s: %r not canonicalised, %r is taken; resolve by hand",
                label, pk, schema, email, canonical,
            )


def canonicalise_emails(apps, schema_editor):
    schema = getattr(schema_editor.connection, "schema_name", "?")
    _canonicalise_rows(apps.get_model("accounts", "User"), "user", schema)
    _canonicalise_rows(apps.get_model("account", "EmailAddress"), "email address", schema)
    Invitation = apps.get_model("accounts", "Invitation")
    pending = defaultdict(list)
    for invitation in Invitation.objects.order_by("-created_at"):
        canonical = email_canonical(invitation.email)
        if canonical != invitation.email:
            Invitation.objects.filter(pk=invitation.pk).update(email=canonical)
        if invitation.accepted_at is None and invitation.revoked_at is None:
            pending[canonical].append(invitation.pk)
    # One open invitation per address: the newest stays, older look-alikes are revoked.
    for pks in pending.values():
        Invitation.objects.filter(pk__in=pks[1:]).update(revoked_at=timezone.now())


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_audit_event_types_security"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="invitation",
            name="invitation_one_pending_per_email",
        ),
        migrations.RemoveConstraint(
            model_name="user",
            name="user_email_unique_ci",
        ),
        migrations.AlterField(
            model_name="invitation",
            name="email",
            field=accounts.emails.CanonicalEmailField(max_length=254),
        ),
        migrations.AlterField(
            model_name="user",
            name="email",
            field=accounts.emails.CanonicalEmailField(max_length=254, unique=True),
        ),
        migrations.RunPython(canonicalise_emails, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="invitation",
            constraint=models.UniqueConstraint(
                condition=models.Q(("accepted_at__isnull", True), ("revoked_at__isnull", True)),
                fields=("email",),
                name="invitation_one_pending_per_email",
            ),
        ),
    ]
