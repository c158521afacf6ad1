"""``manage.py billing_webhook_setup --url https://<BASE_DOMAIN>/stripe/webhook/`` registers our
webhook endpoint at Stripe and stores it (with its signing secret) in dj-stripe's
``WebhookEndpoint``, which ``POST /stripe/webhook/`` then verifies against. ``--id we_...``
adopts an endpoint made in the Stripe dashboard instead, with ``STRIPE_WEBHOOK_SECRET``."""

from __future__ import annotations

import uuid
from typing import Any

import stripe
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from djstripe.models import WebhookEndpoint

from billing.stripe_api import billing_enabled
from billing.webhook_processing import HANDLERS
from billing.webhooks import WEBHOOK_PATH


class Command(BaseCommand):
    help = "Register (or adopt) the Stripe webhook endpoint that POST /stripe/webhook/ verifies against."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--url", help=f"Public URL of the endpoint, ending in {WEBHOOK_PATH}")
        group.add_argument("--id", dest="endpoint_id", help="Adopt this existing endpoint (we_...)")

    def handle(
        self, *args: Any, url: str | None = None, endpoint_id: str | None = None, **options: Any
    ) -> None:
        if not billing_enabled():
            raise CommandError("STRIPE_SECRET_KEY is not set: billing is off.")
        if endpoint_id:
            if not settings.STRIPE_WEBHOOK_SECRET:
                raise CommandError("Set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...).")
            remote = stripe.WebhookEndpoint.retrieve(endpoint_id)
            secret = settings.STRIPE_WEBHOOK_SECRET
        else:
            if not url or not url.endswith(WEBHOOK_PATH):
                raise CommandError(f"The URL must end in {WEBHOOK_PATH}")
            remote = stripe.WebhookEndpoint.create(
                url=url,
                enabled_events=sorted(HANDLERS),  # type: ignore[arg-type]
                api_version=settings.STRIPE_API_VERSION,
                metadata={"djstripe_uuid": str(uuid.uuid4())},
            )
            secret = str(remote.secret)
        endpoint = WebhookEndpoint.sync_from_stripe_data(remote)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret)
        self.stdout.write(self.style.SUCCESS(f"webhook endpoint {endpoint.id} stored for {endpoint.url}"))
