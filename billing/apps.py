from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing import exports, journey, metrics, registrations, stripe_api, webhook_processing

        stripe_api.configure()
        registrations.register()
        journey.register()
        exports.register()
        webhook_processing.handlers_connect()
        metrics.register_billing_gauges()
