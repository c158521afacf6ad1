"""``outbound.refused`` audit events: the kernel's guarded HTTP client (``leanvibe.outbound``)
signals each refused target; the event is recorded in the current schema (the tenant whose
request or task asked for the fetch), with the signed-in user and client address of the request
being served, if any. Only the host, port, scheme, rule and purpose are kept — never the URL's
path or query, which may carry secrets."""

from __future__ import annotations

from typing import Any

from allauth.core import context as allauth_context
from django.dispatch import receiver

from accounts.models import AuditEvent
from accounts.services.audit import audit_record
from leanvibe.outbound import OutboundRefused, outbound_refused


@receiver(outbound_refused, dispatch_uid="accounts.audit_outbound_refused")
def audit_outbound_refused(sender: Any, *, refusal: OutboundRefused, **kwargs: Any) -> None:
    # allauth's AccountMiddleware keeps the request being served in a context variable; a task
    # has none, and the event then has no actor or address.
    audit_record(
        type=AuditEvent.Type.OUTBOUND_REFUSED,
        request=allauth_context.request,
        host=refusal.host[:253],
        port=refusal.port or None,
        scheme=refusal.scheme[:20],
        rule=refusal.rule,
        purpose=refusal.purpose[:100],
    )
