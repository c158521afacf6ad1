from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """No models: the project's commands (run_platform, check_platform) and the self-check's
    kernel checks (``leanvibe.platform.checks``)."""

    name = "leanvibe.platform"
    label = "leanvibe_platform"

    def ready(self) -> None:
        from leanvibe.platform import checks, metrics

        checks.register_kernel_checks()
        metrics.register_kernel_gauges()
