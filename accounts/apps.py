from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.mfa_adapter import harden_totp_replay_window
        from accounts.services import (
            mfa,  # noqa: F401 - connects the MFA audit receivers
            passwords,  # noqa: F401 - password changes and resets revoke tokens and sessions
            throttle,  # noqa: F401 - counts failed web sign-ins
        )

        harden_totp_replay_window()
