from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants.metrics import register_tenant_gauges
        from tenants.moves import register_public_rows
        from tenants.usage import register_platform_resources

        register_platform_resources()
        register_public_rows()
        register_tenant_gauges()
