from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import journey, registrations
        from accounts.exports import parts as export_parts
        from accounts.mfa_adapter import harden_totp_replay_window
        from accounts.services import (
            mfa,  # noqa: F401 - connects the MFA audit receivers
            outbound_audit,  # noqa: F401 - audits refused outbound requests
            passwords,  # noqa: F401 - password changes and resets revoke tokens and sessions
            throttle,  # noqa: F401 - counts failed web sign-ins
        )
        from accounts.sso.saml import use_canonical_saml_urls

        registrations.register()
        journey.register()
        export_parts.register()
        harden_totp_replay_window()
        use_canonical_saml_urls()
