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
from functools import partial
from traceback import format_exc
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone
from djstripe.event_handlers import _handle_crud_like_event
from djstripe.event_handlers import handle_other_event as djstripe_handle_other_event
from djstripe.models import Event, WebhookEventTrigger
from djstripe.models import Invoice as DjstripeInvoice
from djstripe.signals import WEBHOOK_SIGNALS
from redis import RedisError

from billing import services
from billing.metrics import webhook_event_count_on_commit, webhook_event_type
from billing.models import BatchEvent, InvoiceMirror, batch_owner
from billing.stripe_objects import object_id
from leanvibe import redis as lv_redis

logger = logging.getLogger(__name__)

# Seconds a verified trigger may wait for its first run before the sweep queues it again.
RETRY_AFTER = timedelta(minutes=2)
RETRY_BATCH = 200
# Most triggers of one customer processed together (``trigger_process``).
BATCH_MAX = 200
# Seconds a customer's "task queued" mark lives (``trigger_queue``).
QUEUED_MARK_SECONDS = 60
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


def queued_key(customer_id: str) -> str:
    """Set while a task to process the customer's waiting triggers is queued and not started."""
    return f"{settings.CACHE_KEY_PREFIX}:billing:webhooks:queued:{customer_id}"


def trigger_queue(trigger: WebhookEventTrigger) -> None:
    """Queue the processing of a verified trigger (after commit), once per burst of its customer:
    while a task for the customer is queued and not started, a newer trigger of that customer
    needs none (the task processes every trigger of the customer it finds waiting when it
    starts). The mark expires, so a lost task delays a customer's events by at most that long
    (and the sweep re-queues them)."""
    from billing import tasks  # the tasks module imports this one

    customer_id = _customer_of(trigger)
    if customer_id:
        try:
            if not lv_redis.client().set(
                queued_key(customer_id), trigger.pk, nx=True, ex=QUEUED_MARK_SECONDS
            ):
                return
        except RedisError:
            logger.warning("Redis unavailable: queuing webhook trigger %s on its own", trigger.pk)
    tasks.webhook_trigger_process.delay(trigger.pk)


def _pending_of_customer(customer_id: str) -> list[WebhookEventTrigger]:
    """The customer's verified triggers waiting to be processed, oldest first, locked (those
    another worker holds are skipped: it processes them)."""
    candidates = (
        WebhookEventTrigger.objects.select_for_update(skip_locked=True)
        .filter(valid=True, processed=False, body__contains=customer_id)
        .order_by("created", "pk")[:BATCH_MAX]
    )
    return [trigger for trigger in candidates if _customer_of(trigger) == customer_id]


def _handled_object(event: Event) -> str:
    return object_id(_object(event).get("id")) or event.id


def _event_build(body: dict[str, Any], owner: Any) -> Event:
    """The ``Event`` dj-stripe's ``Event.process`` would make of ``body``, unsaved: its record by
    dj-stripe's own mapping and hook, and the batch's owner account (looked up once)."""
    if not isinstance(body, dict) or body.get("object") != "event" or not body.get("id"):
        raise ValueError("the trigger's body is not a Stripe event")
    record = BatchEvent._stripe_object_to_record(body, api_key=settings.STRIPE_SECRET_KEY)
    event = Event(**record, djstripe_owner_account=owner)
    event._attach_objects_hook(Event, body, api_key=settings.STRIPE_SECRET_KEY)
    return event


def _batch_process(batch: list[WebhookEventTrigger]) -> None:
    """Make each trigger's ``Event`` (one per Stripe event id: a duplicate points at the one that
    exists), then run the handlers (dj-stripe's, then ours) once per event type and object,
    for the newest new event of each, with the subscription syncs they ask for coalesced into
    one per subscription. Every handler re-reads the object from Stripe, so running it for the
    newest event stores what running it for each older one in turn would have left."""
    bodies = [trigger.json_body for trigger in batch]
    ids = [str(body.get("id") or "") if isinstance(body, dict) else "" for body in bodies]
    events: dict[str, Event] = Event.objects.in_bulk(set(ids), field_name="id")
    new: list[Event] = []
    owner = None
    for trigger, body, event_id in zip(batch, bodies, ids, strict=True):
        event = events.get(event_id)
        if event is None:
            if not new:
                owner = Event._find_owner_account(body, api_key=settings.STRIPE_SECRET_KEY)
            event = _event_build(body, owner)
            events[event_id] = event
            new.append(event)
        trigger.event, trigger.processed = event, True
        trigger.exception = trigger.traceback = ""
    Event.objects.bulk_create(new)
    newest: dict[tuple[str, str], Event] = {}
    for event in sorted(new, key=lambda e: e.created):  # stable: arrival order among equals
        newest.pop((event.type, _handled_object(event)), None)
        newest[(event.type, _handled_object(event))] = event
    with services.subscription_syncs_coalesced(), batch_owner(owner):
        for event in newest.values():
            event.invoke_webhook_handlers()
    # One UPDATE: the same values for all but the event (``bulk_update`` made a CASE of each field).
    WebhookEventTrigger.objects.filter(pk__in=[trigger.pk for trigger in batch]).update(
        processed=True,
        exception="",
        traceback="",
        updated=timezone.now(),
        event_id=Case(*(When(pk=trigger.pk, then=Value(trigger.event_id)) for trigger in batch)),
    )
    for body in bodies:
        webhook_event_count_on_commit(event_type=webhook_event_type(body), result="processed")


def _one_process(trigger: WebhookEventTrigger) -> bool:
    """dj-stripe's own processing of one trigger; on failure record why (for the sweep)."""
    try:
        with transaction.atomic():
            trigger.process(save=False)
    except Exception as exc:
        logger.exception("processing Stripe webhook trigger %s failed", trigger.pk)
        trigger.processed = False
        trigger.exception = str(exc)[:128]
        trigger.traceback = format_exc()
        trigger.save()
        webhook_event_count_on_commit(event_type=webhook_event_type(trigger.json_body), result="failed")
        return False
    trigger.save()
    webhook_event_count_on_commit(event_type=webhook_event_type(trigger.json_body), result="processed")
    return True


def _customer_process(customer_id: str) -> bool:
    """Process every waiting trigger of one customer together (a burst is applied once). If that
    fails, each on its own, so one failing event holds up none of the others."""
    with transaction.atomic():
        _customer_lock(customer_id)
        batch = _pending_of_customer(customer_id)
        if not batch:
            return False
        if len(batch) >= BATCH_MAX:
            _requeue_on_commit(batch[-1].pk)  # more are waiting
        try:
            with transaction.atomic():
                _batch_process(batch)
            return True
        except Exception:
            logger.exception("processing %s Stripe webhook triggers together failed", len(batch))
        results = []
        for trigger in batch:
            trigger.refresh_from_db()  # the batch's savepoint is rolled back
            results.append(_one_process(trigger))
        return any(results)


def trigger_process(*, trigger_id: int) -> bool:
    """Process a verified trigger: with every other waiting trigger of its customer, or alone
    when it names no customer; on failure record why and leave it for the sweep. Returns
    whether anything was processed."""
    trigger = WebhookEventTrigger.objects.filter(pk=trigger_id, valid=True).first()
    if trigger is None:
        return False
    customer_id = _customer_of(trigger)
    if customer_id:
        # From here on a newer trigger of the customer queues a task of its own (trigger_queue):
        # the ones this task does not find waiting are committed after this point.
        try:
            lv_redis.client().delete(queued_key(customer_id))
        except RedisError:
            logger.warning("Redis unavailable: the customer's queued mark expires by itself")
        return _customer_process(customer_id)
    with transaction.atomic():
        locked = (
            WebhookEventTrigger.objects.select_for_update(skip_locked=True)
            .filter(pk=trigger_id, valid=True, processed=False)
            .first()
        )
        if locked is None:
            return False  # done already, or being done by another worker
        return _one_process(locked)


def _requeue_on_commit(trigger_id: int) -> None:
    from billing import tasks  # the tasks module imports this one

    transaction.on_commit(partial(tasks.webhook_trigger_process.delay, trigger_id))


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


def _invoice_mirrored(invoice_id: str) -> dict[str, Any] | None:
    """The invoice as dj-stripe's handler of this event stored it a moment ago, in this same
    transaction, from its own re-read at Stripe (dj-stripe's handlers run before ours): reading
    it again from Stripe cost a request per invoice event (``bench/webhooks.py``)."""
    data = DjstripeInvoice.objects.filter(id=invoice_id).values_list("stripe_data", flat=True).first()
    return dict(data) if data else None


def on_invoice_paid(sender: Any, event: Event, **_: Any) -> None:
    invoice_id = object_id(_object(event).get("id"))
    services.invoice_paid(invoice_id=invoice_id, fresh=_invoice_mirrored(invoice_id))


def on_invoice_payment_failed(sender: Any, event: Event, **_: Any) -> None:
    invoice_id = object_id(_object(event).get("id"))
    services.invoice_payment_failed(
        invoice_id=invoice_id, failed_at=event.created, fresh=_invoice_mirrored(invoice_id)
    )


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


def on_invoice_event(sender: Any, event: Event, **_: Any) -> None:
    """dj-stripe's own handler of invoice events (its ``_handle_crud_like_event``: re-read the
    invoice, sync it, or delete it on ``invoice.deleted``), storing through ``InvoiceMirror``."""
    _handle_crud_like_event(target_cls=InvoiceMirror, event=event)


#: The invoice events whose dj-stripe handler ``on_invoice_event`` replaces.
INVOICE_EVENTS = tuple(sorted(t for t in WEBHOOK_SIGNALS if t.startswith("invoice.")))


def handlers_connect() -> None:
    for event_type in INVOICE_EVENTS:
        signal = WEBHOOK_SIGNALS[event_type]
        if signal.disconnect(djstripe_handle_other_event, sender=Event):
            signal.connect(on_invoice_event, sender=Event, dispatch_uid=f"billing:mirror:{event_type}")
    for event_type, handler in HANDLERS.items():
        WEBHOOK_SIGNALS[event_type].connect(handler, sender=Event, dispatch_uid=f"billing:{event_type}")
