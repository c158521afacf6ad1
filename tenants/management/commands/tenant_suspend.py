from __future__ import annotations

from tenants import services
from tenants.management.commands._tenant_status import TenantStatusCommand


class Command(TenantStatusCommand):
    help = "Suspend an organisation, by id or subdomain."
    action = staticmethod(services.tenant_suspend)
