from django.apps import AppConfig


class JourneyConfig(AppConfig):
    """The organisation's journey: six levels of steps, ticked by what the organisation did.
    Features report their steps through ``tenants.journey.registry``; this app imports none."""

    name = "tenants.journey"
    label = "journey"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants.journey.registry import register_platform_steps

        register_platform_steps()
