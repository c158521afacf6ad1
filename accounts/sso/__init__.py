"""Single sign-on per tenant, one module per concern.

- ``common``: the provider types and the small rules every module below shares;
- ``urls``: the values given to an identity provider (ACS, metadata, redirect and login URLs);
- ``providers``: reading and writing a tenant's identity providers and their policy;
- ``settings``: the tenant's SSO switches (``sso_only``, ``trust_idp_mfa``);
- ``oidc``: our OpenID Connect client (discovery, state, PKCE, token exchange, ID token);
- ``saml``: IdP metadata, the assertion checks, and allauth's SAML flow on canonical URLs;
- ``signin``: who an SSO sign-in signs in as, links, pending sign-ins, the second factor.

Each tenant's providers are allauth ``SocialApp`` rows in the tenant's own schema:

- OpenID Connect: ``provider="openid_connect"``, ``provider_id=<slug>``, ``client_id``, the
  client secret Fernet-encrypted in ``secret``, and ``settings["server_url"]`` (issuer or
  discovery URL).
- SAML 2.0: ``provider="saml"``, ``provider_id=client_id=<slug>`` (the slug is the
  "organization" of allauth's SAML URLs), ``settings["idp"]`` parsed from the IdP's metadata,
  and ``settings["advanced"]`` in strict mode with signed assertions required. allauth runs the
  SAML flow; ``accounts.views.sso.CheckedFinishACSView`` adds the checks of ``saml``.

Our own policy lives under ``settings["leanvibe"]``: allowed email domains, the claim or
attribute holding a display name and a role, and the mapping of role values.

Services take data (a tenant, a client address) and keep an ``HttpRequest`` only for the audit
trail: ``audit_record(request=...)`` and the actor an owners' notification names.
"""
