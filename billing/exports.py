"""What billing adds to a data export (``accounts.exports.registry``): the subscription summary
the API shows (our copy of Stripe's state; no Stripe call from the export's worker, so an
export never waits on or fails with Stripe). Invoices stay in the customer portal."""

from __future__ import annotations

from accounts.exports.registry import ExportArchive, ExportPart, export_part_register
from billing.selectors import billing_account_of, subscription_public
from tenants.models import Tenant


def billing_write(tenant: Tenant, archive: ExportArchive) -> None:
    archive.json("billing.json", {"subscription": subscription_public(tenant, billing_account_of(tenant))})


def register() -> None:
    export_part_register(ExportPart("billing", billing_write, order=70))
