"""Webhook delivery: Stripe's signature, retries, duplicates and reordered batches."""

# mypy: disable-error-code="union-attr, arg-type"

from __future__ import annotations

import json
import time

import pytest
import stripe

from billing.stripe_local import StripeLocal, sign

from .conftest import Receiver


def _endpoint(receiver: Receiver, events: list[str] | None = None) -> stripe.WebhookEndpoint:
    return stripe.WebhookEndpoint.create(url=receiver.url, enabled_events=events or ["*"])


def test_signature_verifies_with_the_library(local: StripeLocal, receiver: Receiver) -> None:
    endpoint = _endpoint(receiver)
    assert endpoint.secret.startswith("whsec_")
    assert "secret" not in stripe.WebhookEndpoint.retrieve(endpoint.id)
    customer = stripe.Customer.create(email="ada@acme.test")
    assert local.delivery.wait_idle(5)
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    event = stripe.Webhook.construct_event(request["body"], request["signature"], endpoint.secret)
    assert event.type == "customer.created"
    assert event.data.object.id == customer.id
    assert event.api_version == "2026-08-26.dahlia"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(request["body"], request["signature"], "whsec_wrong")
    assert local.deliveries[0].ok and local.deliveries[0].status == 200


def test_sign_matches_stripe_scheme() -> None:
    header = sign('{"id": "evt_1"}', "whsec_abc", 1700000000)
    assert header.startswith("t=1700000000,v1=")
    stripe.WebhookSignature.verify_header('{"id": "evt_1"}', header, "whsec_abc", tolerance=None)


def test_enabled_events_filter(local: StripeLocal, receiver: Receiver) -> None:
    _endpoint(receiver, ["product.created"])
    stripe.Customer.create()
    stripe.Product.create(name="Pro")
    assert local.delivery.wait_idle(5)
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["product.created"]


def test_retried_after_500_then_delivered(local: StripeLocal, receiver: Receiver) -> None:
    _endpoint(receiver)
    receiver.fail_first = 2
    stripe.Customer.create()
    assert local.delivery.wait_idle(5)
    statuses = [(r.attempt, r.status) for r in local.deliveries]
    assert statuses == [(1, 500), (2, 500), (3, 200)]
    assert [r["failed"] for r in receiver.requests] == [True, True, False]


def test_connection_errors_are_retried_then_given_up(local: StripeLocal) -> None:
    stripe.WebhookEndpoint.create(url="http://127.0.0.1:9/nothing-listens", enabled_events=["*"])
    stripe.Customer.create()
    assert local.delivery.wait_idle(5)
    assert [r.attempt for r in local.deliveries] == [1, 2, 3, 4]
    assert all(r.status is None and r.error for r in local.deliveries)


def test_duplicate_and_reversed_deliveries(local: StripeLocal, receiver: Receiver) -> None:
    _endpoint(receiver)
    local.delivery.duplicate_next(1)
    first = stripe.Customer.create()
    assert local.delivery.wait_idle(5)
    ids = [json.loads(r["body"])["id"] for r in receiver.requests]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert json.loads(receiver.requests[0]["body"])["data"]["object"]["id"] == first.id
    receiver.requests.clear()
    local.delivery.hold()
    stripe.Customer.modify(first.id, name="One")
    stripe.Customer.modify(first.id, name="Two")
    stripe.Customer.modify(first.id, name="Three")
    assert local.delivery.wait_idle(1)
    assert receiver.requests == []
    local.delivery.release(order="reverse")
    assert local.delivery.wait_idle(5)
    names = [json.loads(r["body"])["data"]["object"]["name"] for r in receiver.requests]
    assert names == ["Three", "Two", "One"]
    previous = [json.loads(r["body"])["data"]["previous_attributes"]["name"] for r in receiver.requests]
    assert previous == ["Two", "One", None]


def test_endpoint_update_and_delete(local: StripeLocal, receiver: Receiver) -> None:
    endpoint = _endpoint(receiver)
    stripe.WebhookEndpoint.modify(endpoint.id, disabled=True)
    stripe.Customer.create()
    assert local.delivery.wait_idle(2)
    assert receiver.requests == []
    listed = stripe.WebhookEndpoint.list()
    assert [e.id for e in listed.data] == [endpoint.id] and listed.data[0].status == "disabled"
    assert stripe.WebhookEndpoint.delete(endpoint.id).deleted is True
    assert stripe.WebhookEndpoint.list().data == []


def test_resend_and_stale_signatures(local: StripeLocal, receiver: Receiver) -> None:
    endpoint = _endpoint(receiver)
    stripe.Customer.create()
    assert local.delivery.wait_idle(5)
    event_id = json.loads(receiver.requests[0]["body"])["id"]
    local.resend(event_id)
    assert local.delivery.wait_idle(5)
    assert [json.loads(r["body"])["id"] for r in receiver.requests] == [event_id, event_id]
    local.delivery.timestamp_offset = -600
    stripe.Customer.create()
    assert local.delivery.wait_idle(5)
    stale = receiver.requests[-1]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(stale["body"], stale["signature"], endpoint.secret, tolerance=300)


def test_manual_flush_with_a_custom_transport(local: StripeLocal) -> None:
    received: list[tuple[str, dict[str, str], bytes]] = []
    answers = iter([503, 200, 200])

    def transport(url: str, headers: dict[str, str], body: bytes) -> int:
        received.append((url, headers, body))
        return next(answers)

    local.delivery.manual = True
    local.delivery.transport = transport
    endpoint = stripe.WebhookEndpoint.create(url="http://testserver/stripe/webhook/", enabled_events=["*"])
    stripe.Customer.create()
    stripe.Product.create(name="Pro")
    time.sleep(0.2)
    assert received == []  # nothing leaves before flush()
    made = local.delivery.flush()
    assert [(r.event_type, r.attempt, r.status) for r in made] == [
        ("customer.created", 1, 503),
        ("product.created", 1, 200),
        ("customer.created", 2, 200),
    ]
    url, headers, body = received[0]
    assert url == "http://testserver/stripe/webhook/"
    event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], endpoint.secret)
    assert event.type == "customer.created"
    assert local.delivery.flush() == []


def test_leaving_manual_mode_sends_what_was_queued(local: StripeLocal, receiver: Receiver) -> None:
    _endpoint(receiver)
    local.delivery.manual = True
    stripe.Customer.create()
    time.sleep(0.2)
    assert receiver.requests == []
    local.delivery.manual = False
    assert local.delivery.wait_idle(5)
    assert len(receiver.requests) == 1
