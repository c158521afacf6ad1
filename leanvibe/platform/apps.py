from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """No models: installed so that Django finds the project's management commands."""

    name = "leanvibe.platform"
    label = "leanvibe_platform"
