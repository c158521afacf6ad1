"""Processing of verified Stripe webhook events, in Celery (``billing.tasks``).

dj-stripe makes the ``Event`` once per Stripe event id (a duplicate delivery is a no-op) and its
signals run dj-stripe's handlers and then ours (below), inside the event's transaction. Ours
re-read the object from Stripe by id and never trust the payload or the order of events. Any
failure rolls the event back and is recorded on the trigger; beat runs it again.

Events of one Stripe customer are processed one at a time (a transaction-level advisory lock on
the customer's id, taken before anything else): the handlers of different event types lock the
same rows in different orders (an invoice's locks the account, then the subscription; a
subscription's the subscription, then the account), so two workers processing two events of one
customer at once deadlocked (``python -m bench --only webhooks`` found it: a few percent of the
events failed and waited for the sweep). Different customers still run in parallel.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from traceback import format_exc
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger
from djstripe.signals import WEBHOOK_SIGNALS

from billing import services
from billing.stripe_objects import object_id

logger = logging.getLogger(__name__)

# Seconds a verified trigger may wait for its first run before the sweep queues it again.
RETRY_AFTER = timedelta(minutes=2)
RETRY_BATCH = 200
# First key of the advisory lock per customer (the second is hashtext of the customer's id).
_CUSTOMER_LOCK = 0x5754  # "WT"


def _customer_of(trigger: WebhookEventTrigger) -> str:
    body = trigger.json_body  # {} when the body is not JSON
    data = body.get("data") if isinstance(body, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return ""
    if obj.get("object") == "customer":
        return object_id(obj.get("id")) or ""
    return object_id(obj.get("customer")) or ""


def _customer_lock(customer_id: str) -> None:
    """Until the transaction ends, no other worker processes an event of this customer."""
    if customer_id:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_CUSTOMER_LOCK, customer_id])


def trigger_process(*, trigger_id: int) -> bool:
    """Process one verified trigger once; on failure record why and leave it for the sweep."""
    with transaction.atomic():
        trigger = (
            WebhookEventTrigger.objects.select_for_update(skip_locked=True)
            .filter(pk=trigger_id, valid=True, processed=False)
            .first()
        )
        if trigger is None:
            return False  # done already, being done by another worker, or never verified
        _customer_lock(_customer_of(trigger))
        try:
            with transaction.atomic():
                trigger.process(save=False)
        except Exception as exc:
            logger.exception("processing Stripe webhook trigger %s failed", trigger_id)
            trigger.processed = False
            trigger.exception = str(exc)[:128]
            trigger.traceback = format_exc()
            trigger.save()
            return False
        trigger.save()
        return True


def triggers_unprocessed() -> list[int]:
    cutoff = timezone.now() - RETRY_AFTER
    return list(
        WebhookEventTrigger.objects.filter(valid=True, processed=False, created__lte=cutoff)
        .order_by("created")
        .values_list("pk", flat=True)[:RETRY_BATCH]
    )


# --- our handlers (dj-stripe's signals, after dj-stripe's own; inside the event's transaction) ----
def _object(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = (event.data or {}).get("object") or {}
    return data


def on_subscription_event(sender: Any, event: Event, **_: Any) -> None:
    # dj-stripe's own handler of every customer.subscription.* event has just retrieved this
    # subscription from Stripe and mirrored it (items, prices) in its tables, in this same
    # transaction: mirroring it a second time cost about a third of the event (bench/webhooks.py).
    services.subscription_sync(subscription_id=object_id(_object(event).get("id")), mirror=False)


def on_invoice_paid(sender: Any, event: Event, **_: Any) -> None:
    services.invoice_paid(invoice_id=object_id(_object(event).get("id")))


def on_invoice_payment_failed(sender: Any, event: Event, **_: Any) -> None:
    services.invoice_payment_failed(invoice_id=object_id(_object(event).get("id")), failed_at=event.created)


def on_test_clock_ready(sender: Any, event: Event, **_: Any) -> None:
    services.clock_ready_apply(clock_id=object_id(_object(event).get("id")))


def on_checkout_completed(sender: Any, event: Event, **_: Any) -> None:
    if _object(event).get("mode") == "subscription":
        services.checkout_completed(session_id=object_id(_object(event).get("id")))


HANDLERS = {
    "customer.subscription.created": on_subscription_event,
    "customer.subscription.updated": on_subscription_event,
    "customer.subscription.deleted": on_subscription_event,
    "customer.subscription.paused": on_subscription_event,
    "customer.subscription.resumed": on_subscription_event,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
    "checkout.session.completed": on_checkout_completed,
    "test_helpers.test_clock.ready": on_test_clock_ready,
}


def handlers_connect() -> None:
    for event_type, handler in HANDLERS.items():
        WEBHOOK_SIGNALS[event_type].connect(handler, sender=Event, dispatch_uid=f"billing:{event_type}")
