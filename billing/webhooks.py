"""Stripe webhooks: ``POST /stripe/webhook/`` on the public host.

dj-stripe 2.11 routes ``/stripe/webhook/<uuid>/``, one URL per ``WebhookEndpoint`` row. We
serve one fixed URL instead: it takes the newest enabled ``WebhookEndpoint`` of our mode
(``STRIPE_LIVE_MODE``) whose URL ends in ``/stripe/webhook/`` (made by ``manage.py
billing_webhook_setup``), and dj-stripe's ``WebhookEventTrigger`` verifies the signature with
that row's secret and tolerance (300 s) and is stored as dj-stripe's own view stores it.

Unlike dj-stripe's view, a verified event is not processed inside the request: its trigger is
queued to Celery after commit (``billing.webhook_processing``). dj-stripe's
``DJSTRIPE_WEBHOOK_EVENT_CALLBACK`` did this but is deprecated in 2.11, hence this view.
Missing or bad signature: 400, and the trigger (if stored) stays ``valid=False``, never processed.
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from djstripe.models.webhooks import get_remote_ip

from billing import webhook_processing
from billing.metrics import webhook_event_count, webhook_event_type
from leanvibe.access import public_page

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/stripe/webhook/"


def webhook_endpoint_current() -> WebhookEndpoint | None:
    return (
        WebhookEndpoint.objects.filter(
            livemode=settings.STRIPE_LIVE_MODE, status="enabled", url__endswith=WEBHOOK_PATH
        )
        .order_by("-djstripe_created")
        # What receiving needs (not the stored Stripe object): half the request's time went here.
        .only(
            "djstripe_id",
            "id",
            "secret",
            "djstripe_owner_account_id",
            "djstripe_tolerance",
            "djstripe_validation_method",
        )
        .first()
    )


@public_page("Stripe calls it; every request must carry a signature made with the endpoint's secret")
@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    response = _webhook_receive(request)
    if response.status_code != 200:
        webhook_event_count(event_type="unknown", result="rejected")  # its body is anyone's
    return response


def _webhook_receive(request: HttpRequest) -> HttpResponse:
    if "stripe-signature" not in request.headers:
        return HttpResponseBadRequest("missing signature")
    if "x-djstripe-webhook-secret" in request.headers:
        # dj-stripe lets this header replace the secret when DEBUG is on: never here.
        return HttpResponseBadRequest("unexpected header")
    endpoint = webhook_endpoint_current()
    if endpoint is None or not endpoint.secret:
        logger.error("a Stripe webhook arrived but no endpoint is configured (billing_webhook_setup)")
        return HttpResponseBadRequest("no webhook endpoint is configured")
    try:
        body = request.body.decode(request.encoding or "utf-8")
    except UnicodeDecodeError:
        return HttpResponseBadRequest("body is not text")
    trigger = WebhookEventTrigger(
        headers=dict(request.headers),
        body=body,
        remote_ip=get_remote_ip(request),
        stripe_trigger_account_id=endpoint.djstripe_owner_account_id,
        webhook_endpoint=endpoint,
    )
    # Checked before it is stored: one INSERT, valid or not (dj-stripe's view inserts, then updates).
    trigger.valid = trigger.validate(api_key=settings.STRIPE_SECRET_KEY, secret=endpoint.secret)
    with transaction.atomic():
        trigger.save()
        if trigger.valid:
            transaction.on_commit(partial(webhook_processing.trigger_queue, trigger))
    if not trigger.valid:
        return HttpResponseBadRequest("invalid signature")
    webhook_event_count(event_type=webhook_event_type(trigger.json_body), result="received")
    return HttpResponse(str(trigger.pk))
