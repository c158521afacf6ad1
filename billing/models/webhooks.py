"""dj-stripe's models as webhook processing stores them (``billing.webhook_processing``).

Proxies, so every row is dj-stripe's own; they change how a row is made, not what it holds.
dj-stripe looks up an object's owner account once per object it syncs (its API key row, in a
savepoint: four round trips), and mirrors each invoice's line items row by row; together these
were most of the processing time (``bench/webhooks.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from djstripe.models import Event, Invoice

#: The owner account of the objects a batch stores (all of one endpoint's account), once looked up.
_batch_owner: ContextVar[Any] = ContextVar("billing_batch_owner", default=None)


@contextmanager
def batch_owner(owner: Any) -> Iterator[None]:
    token = _batch_owner.set(owner)
    try:
        yield
    finally:
        _batch_owner.reset(token)


class BatchEvent(Event):
    """dj-stripe's ``Event``, its record built by dj-stripe's own mapping
    (``_stripe_object_to_record``) without the owner lookup: the caller sets the batch's owner,
    looked up once. Stored as plain ``Event`` rows."""

    class Meta:
        proxy = True

    @classmethod
    def _find_owner_account(cls, data: Any, api_key: Any = None, livemode: Any = None) -> None:
        return None


class InvoiceMirror(Invoice):
    """dj-stripe's ``Invoice``, synced by dj-stripe's own handler code, with two differences:
    inside a batch the owner account is the batch's (looked up once), and the line items are not
    copied into dj-stripe's ``LineItem`` rows. They stay in the invoice's ``stripe_data``
    (``lines``), which is what the platform reads (``billing.revenue``); the invoice's
    discounts and invoice items are still synced, by dj-stripe."""

    class Meta:
        proxy = True

    @classmethod
    def _find_owner_account(cls, data: Any, api_key: Any = None, livemode: Any = None) -> Any:
        owner = _batch_owner.get()
        if owner is not None:
            return owner
        return super()._find_owner_account(data, api_key=api_key, livemode=livemode)

    @classmethod
    def _stripe_object_to_line_items(
        cls, target_cls: Any, data: Any, invoice: Any, api_key: Any = None
    ) -> list[Any]:
        return []
