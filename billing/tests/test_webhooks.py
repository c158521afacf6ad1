"""``POST /stripe/webhook/``: dj-stripe verifies the signature with the endpoint's own secret;
a verified event is stored and queued to Celery, never processed inside the request."""

from __future__ import annotations

import json
import time
from io import StringIO

import stripe
from django.core.management import call_command
from django.test import Client
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger

from billing.tests.fixtures import WEBHOOK_SECRET as SECRET
from billing.tests.stripe_fixtures import event, signature, stripe_object


def _payload(event_id: str = "evt_test_1") -> str:
    sub = stripe_object("subscription", id="sub_test_1", status="active")
    return json.dumps(event("customer.subscription.updated", sub, event_id=event_id))


def _post(client: Client, payload: str, **headers: str):
    return client.post("/stripe/webhook/", data=payload, content_type="application/json", headers=headers)


def _nothing_processed() -> None:
    assert not WebhookEventTrigger.objects.filter(processed=True).exists()
    assert not WebhookEventTrigger.objects.filter(valid=True).exists()
    assert not Event.objects.exists()


def test_signed_event_is_stored_and_queued_not_processed_in_the_request(
    client, endpoint, django_capture_on_commit_callbacks
):
    payload = _payload()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = _post(client, payload, stripe_signature=signature(payload, SECRET))
    assert response.status_code == 200
    trigger = WebhookEventTrigger.objects.get()
    assert str(trigger.pk) == response.content.decode()
    assert trigger.valid and not trigger.processed
    assert trigger.webhook_endpoint == endpoint
    assert len(queued) == 1  # billing.tasks.webhook_trigger_process, after commit
    assert not Event.objects.exists()  # processed by the worker, not here


def test_missing_signature_is_400_and_nothing_is_stored(client, endpoint):
    response = _post(client, _payload())
    assert response.status_code == 400
    assert not WebhookEventTrigger.objects.exists()
    _nothing_processed()


def test_forged_signature_is_400_and_nothing_is_processed(
    client, endpoint, django_capture_on_commit_callbacks
):
    payload = _payload()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        forged = _post(client, payload, stripe_signature=signature(payload, "whsec_someone_else"))
        # A valid signature of another body does not sign this one.
        tampered = _post(
            client, payload.replace("active", "canceled"), stripe_signature=signature(payload, SECRET)
        )
        garbage = _post(client, payload, stripe_signature="t=1,v1=deadbeef")
    assert [forged.status_code, tampered.status_code, garbage.status_code] == [400, 400, 400]
    assert not queued
    _nothing_processed()


def test_stale_signature_is_400(client, endpoint, django_capture_on_commit_callbacks):
    payload = _payload()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        stale = _post(
            client, payload, stripe_signature=signature(payload, SECRET, timestamp=int(time.time()) - 301)
        )
        fresh = _post(
            client, payload, stripe_signature=signature(payload, SECRET, timestamp=int(time.time()) - 200)
        )
    assert stale.status_code == 400
    assert fresh.status_code == 200
    assert len(queued) == 1
    assert WebhookEventTrigger.objects.filter(valid=True).count() == 1


def test_debug_secret_override_header_is_refused(client, endpoint, settings):
    """dj-stripe accepts X-Djstripe-Webhook-Secret in place of the endpoint's secret with DEBUG."""
    settings.DEBUG = True
    payload = _payload()
    response = _post(
        client,
        payload,
        stripe_signature=signature(payload, "whsec_attacker"),
        x_djstripe_webhook_secret="whsec_attacker",
    )
    assert response.status_code == 400
    _nothing_processed()


def test_without_a_configured_endpoint_is_400(client, db):
    payload = _payload()
    assert _post(client, payload, stripe_signature=signature(payload, SECRET)).status_code == 400
    assert not WebhookEventTrigger.objects.exists()


def test_only_post_on_the_public_host(client, endpoint, tenant_a):
    assert client.get("/stripe/webhook/").status_code == 405
    payload = _payload()
    on_tenant = client.post(
        "/stripe/webhook/",
        data=payload,
        content_type="application/json",
        headers={"stripe_signature": signature(payload, SECRET)},
        HTTP_HOST=tenant_a.host,
    )
    assert on_tenant.status_code == 404
    assert not WebhookEventTrigger.objects.exists()


def test_webhook_setup_registers_the_endpoint_and_its_secret_verifies(client, stripe_local, db):
    out = StringIO()
    call_command("billing_webhook_setup", "--url", "http://127.0.0.1:9/stripe/webhook/", stdout=out)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.url.endswith("/stripe/webhook/")
    assert stripe.WebhookEndpoint.retrieve(endpoint.id).url == endpoint.url
    payload = _payload()
    assert _post(client, payload, stripe_signature=signature(payload, endpoint.secret)).status_code == 200
    assert _post(client, payload, stripe_signature=signature(payload, SECRET)).status_code == 400
