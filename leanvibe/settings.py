"""LeanVibe settings. Every value comes from the environment; see README.md for the table.

Importing them starts nothing and connects nowhere (leanvibe/environment.py says what does).
With ``LEANVIBE_ENV=production`` unsafe values stop the process here, before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import environ
from celery.schedules import crontab
from csp import constants as csp_constants

from leanvibe import embedded, environment

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environment.read_dotenv()
LEANVIBE_ENV = environment.current()
PRODUCTION = LEANVIBE_ENV == environment.PRODUCTION

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="" if PRODUCTION else environment.DEVELOPMENT_SECRET_KEY)
# The public site; tenants are served on its subdomains. No default in production.
BASE_DOMAIN = env("BASE_DOMAIN", default="" if PRODUCTION else "localhost")
# Hosts that serve the public site besides BASE_DOMAIN (the test client, 127.0.0.1 in development).
_EXTRA_PUBLIC_HOSTS = env.list("PUBLIC_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "testserver"])
PUBLIC_HOSTS = [host for host in [BASE_DOMAIN, *_EXTRA_PUBLIC_HOSTS] if host]
ALLOWED_HOSTS = list(
    dict.fromkeys(
        [
            *([BASE_DOMAIN, f".{BASE_DOMAIN}"] if BASE_DOMAIN else []),
            *PUBLIC_HOSTS,
            *env.list("ALLOWED_HOSTS", default=[]),
        ]
    )
)
DATABASE_URL = env("DATABASE_URL", default="")
REDIS_URL = env("REDIS_URL", default="")
if PRODUCTION:
    environment.refuse_unsafe_production(
        database_url=DATABASE_URL,
        redis_url=REDIS_URL,
        secret_key=SECRET_KEY,
        debug=DEBUG,
        allowed_hosts=ALLOWED_HOSTS,
        base_domain=BASE_DOMAIN,
    )
else:
    # Unset and not started (no entry point asked for the embedded servers): connects nowhere.
    DATABASE_URL = DATABASE_URL or embedded.NOT_STARTED_DATABASE_URL
    REDIS_URL = REDIS_URL or embedded.NOT_STARTED_REDIS_URL
SITE_PORT = env.int("SITE_PORT", default=8000)  # the port tenant links point at in development
SITE_SCHEME = env("SITE_SCHEME", default="http")

# --- apps -----------------------------------------------------------------------------------
SHARED_APPS = [
    "django_tenants",
    "tenants",
    # The organisations' journey (levels, steps, badges): public rows, one per tenant and step.
    "tenants.journey",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "leanvibe.admin_site.PlatformAdminConfig",  # the console sees public-schema models only
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # allauth's sessions page uses its filters
    "accounts",
    # allauth's account tables exist on public too: its auth backend serves the admin console.
    "allauth",
    "allauth.account",
    # Staff verify a second factor for the admin console (leanvibe.admin_site).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "rest_framework",
    "drf_spectacular",
    "django_prometheus",
    "leanvibe.platform",  # the project's commands (run_platform); no models
    # dj-stripe's mirror of the Stripe account: public schema only, never in a tenant's. Before
    # billing, so that its webhook handlers run before billing's (which re-read from Stripe).
    "djstripe",
    # Billing is platform-wide: the usage ledger and dj-stripe's mirror live in public only.
    "billing",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "accounts",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "allauth.usersessions",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_email",
    "django_otp.plugins.otp_static",
    "agents",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# The migrated schema every tenant is cloned from (see tenants/schemas.py).
TENANT_TEMPLATE_SCHEMA = env("TENANT_TEMPLATE_SCHEMA", default="tenant_template")
TENANT_POOL_SIZE = env.int("TENANT_POOL_SIZE", default=3)
# django-tenants' cache key function keeps one tenant's keys from colliding with another's.

MIDDLEWARE = [
    "leanvibe.health.HealthCheckMiddleware",
    # Prometheus' scrape of a pod by its address (no site's host): answered before host checks.
    "leanvibe.middleware.PodMetricsMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "leanvibe.middleware.RequestSizeLimitMiddleware",
    # Before tenant resolution, so its own pages (unknown or suspended tenant) carry the policy too.
    "csp.middleware.CSPMiddleware",
    "tenants.middleware.TenantResolutionMiddleware",
    "leanvibe.middleware.NulInUrlMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # allauth.usersessions.middleware.UserSessionsMiddleware, skipped on the public site.
    "accounts.session_tracking.TenantUserSessionsMiddleware",
    "accounts.middleware.MfaEnrollmentMiddleware",
    # 402 payment_required for a tenant whose trial ended without a card or who did not pay
    # (billing.middleware; one Redis read, no SQL, no Stripe call).
    "billing.middleware.PaymentRequiredMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "leanvibe.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "leanvibe.urls_public"
WSGI_APPLICATION = "leanvibe.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "leanvibe.context_processors.site",
                "billing.context_processors.billing_banner",
            ],
        },
    },
]

# --- data -----------------------------------------------------------------------------------
_db = env.db_url_config(DATABASE_URL)
_db["HOST"] = unquote(_db.get("HOST", "") or "")
_db["ENGINE"] = "django_tenants.postgresql_backend"
_db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
_db["CONN_HEALTH_CHECKS"] = True
_db["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default=f"test_{_db['NAME']}")}
DATABASES = {"default": _db}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# Set search_path only when the schema changes, not before every query.
TENANT_LIMIT_SET_CALLS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", default="leanvibe")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": CACHE_KEY_PREFIX,
    }
}

# --- auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
# Owners who sign up on the public site confirm their address from the welcome email; sign-in
# does not wait for it. Invited and SSO members are verified (their address was proven).
ACCOUNT_EMAIL_VERIFICATION = "optional"
# Confirmation keys are random and stored in the tenant's schema: an HMAC key signs only the
# EmailAddress id, which repeats across schemas, so tenant A's link would confirm B's address.
ACCOUNT_EMAIL_CONFIRMATION_HMAC = False
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# allauth's default prefix is "[<Host header>] ": a subject names no value the client chose.
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[LeanVibe] "
ACCOUNT_LOGOUT_ON_GET = False
ACCESS_TOKEN_LIFETIME = env.int("ACCESS_TOKEN_LIFETIME", default=3600)
REFRESH_TOKEN_LIFETIME = env.int("REFRESH_TOKEN_LIFETIME", default=30 * 24 * 3600)
# Platform staff (tokens of the public schema, issued only with their TOTP code): a short access
# token, and a refresh token that ends this long after the sign-in (rotation does not extend it).
STAFF_ACCESS_TOKEN_LIFETIME = env.int("STAFF_ACCESS_TOKEN_LIFETIME", default=900)
STAFF_REFRESH_TOKEN_LIFETIME = env.int("STAFF_REFRESH_TOKEN_LIFETIME", default=8 * 3600)
# Web sessions are allauth's UserSession rows; their last activity is kept up to date.
USERSESSIONS_TRACK_ACTIVITY = True
# Brute-force protection (accounts/services/throttle.py), for the API login and the web form:
# LOGIN_FAILURE_LIMIT failures of one account, or LOGIN_FAILURE_IP_LIMIT from one address,
# within LOGIN_FAILURE_WINDOW seconds lock it for LOGIN_FAILURE_WINDOW seconds (429 with
# Retry-After). Before that, each attempt waits LOGIN_FAILURE_DELAY seconds per recent failure.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_IP_LIMIT = env.int("LOGIN_FAILURE_IP_LIMIT", default=20)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=300)
LOGIN_FAILURE_DELAY = env.float("LOGIN_FAILURE_DELAY", default=0.25)
# allauth's own limit on the web form, with the same numbers (a second line of defence).
ACCOUNT_RATE_LIMITS = {
    "login_failed": (
        f"{LOGIN_FAILURE_IP_LIMIT}/{LOGIN_FAILURE_WINDOW}s/ip,{LOGIN_FAILURE_LIMIT}/{LOGIN_FAILURE_WINDOW}s/key"
    ),
}
# --- two-factor (allauth.mfa for members, django-otp for email codes and the admin console) ---
MFA_ADAPTER = "accounts.mfa_adapter.MfaAdapter"
# Single sign-on: each tenant's OIDC/SAML apps are SocialApp rows in its own schema
# (accounts/sso/); the adapter applies just-in-time provisioning and its rules.
SOCIALACCOUNT_ADAPTER = "accounts.socialaccount_adapter.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"OAUTH_PKCE_ENABLED": True}}
# Anonymous POST /api/v1/auth/sso/initiate calls per client address (each stores a state).
SSO_INITIATE_RATE = env("SSO_INITIATE_RATE", default="30/minute")
# Seconds an OIDC sign-in (state, nonce, PKCE verifier) may take from start to callback.
SSO_STATE_TTL = env.int("SSO_STATE_TTL", default=600)
# Seconds an SSO sign-in may wait for the person to prove an existing account or give a second factor.
SSO_PENDING_TTL = env.int("SSO_PENDING_TTL", default=600)
# Seconds allowed between our clock and an identity provider's (ID token iat/exp).
SSO_CLOCK_SKEW = env.int("SSO_CLOCK_SKEW", default=60)
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# allauth refuses two-factor to an unverified address (against sign-up squatting of someone else's
# account). Here a sign-up creates a new organisation, nobody else's account, and the API enrols
# regardless; an owner who has not yet confirmed must still be able to meet "require two-factor".
MFA_ALLOW_UNVERIFIED_EMAIL = True
MFA_TOTP_TOLERANCE = 1  # one 30 s step of clock drift either way
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="LeanVibe")
MFA_RECOVERY_CODES_SHOW_ONCE = True
# Fernet key (urlsafe base64 of 32 bytes) encrypting TOTP secrets and recovery codes at rest.
# Empty: derived from SECRET_KEY (rotating SECRET_KEY then makes enrolled authenticators unreadable).
MFA_ENCRYPTION_KEY = env("MFA_ENCRYPTION_KEY", default="")
# Wrong second-factor codes allowed per account per MFA_FAILURE_WINDOW seconds before a 429.
MFA_MAX_FAILURES = env.int("MFA_MAX_FAILURES", default=5)
MFA_FAILURE_WINDOW = env.int("MFA_FAILURE_WINDOW", default=900)
OTP_EMAIL_SUBJECT = "Your LeanVibe sign-in code"
OTP_EMAIL_TOKEN_VALIDITY = 600
# Argon2id at OWASP's parameters (accounts/hashers.py): tens of milliseconds per sign-in instead
# of PBKDF2's 0.4 s of CPU. PBKDF2 stays listed so older hashes verify; each is rehashed with
# Argon2id at its holder's next sign-in.
PASSWORD_HASHERS = env.list(
    "PASSWORD_HASHERS",
    default=[
        "accounts.hashers.Argon2idPasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ],
)

# --- API ------------------------------------------------------------------------------------
# Proxies in front of the app that append the client's address to X-Forwarded-For (1 behind the
# Kubernetes ingress). leanvibe.http.client_address reads the address the outermost one saw; with
# 0 the header is ignored. Audit events, tokens, sessions, throttles and /metrics all use it.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
# What the kernel's API base classes (leanvibe.api.base) take from the members' app, by name:
# the kernel imports no app. API_ROLES are accounts' roles, lowest first (accounts.models.ROLE_RANK).
API_AUTHENTICATION_CLASS = "accounts.authentication.BearerTokenAuthentication"
API_OPTIONAL_AUTHENTICATION_CLASS = "accounts.authentication.OptionalBearerTokenAuthentication"
API_ROLES = ("member", "admin", "owner")
API_MFA_ENROLLMENT_CHECK = "accounts.services.mfa.mfa_enrollment_required"
# Usage metering of authenticated tenant API requests (leanvibe.api.base, tenants.usage): one
# Redis round trip each; over the plan's hard limit, 429. The exempt paths (a prefix when ending
# in "/") stay usable by a blocked tenant, so it can sign in, see its usage and upgrade.
API_USAGE_METERING = env.bool("API_USAGE_METERING", default=True)
API_USAGE_METER = "tenants.usage.api_call_meter"
# Calls a process may count in memory on one lease (tenants.usage._LocalMeter) before asking
# Redis again; 0: every API call is a Redis round trip.
API_USAGE_METER_BATCH = env.int("API_USAGE_METER_BATCH", default=256)
API_USAGE_EXEMPT_PATHS = ("/api/v1/auth/", "/api/v1/billing/", "/api/v1/usage")
REST_FRAMEWORK = {
    # Deny everything by default: the base classes of leanvibe.api.base set their own, so a view on
    # a plain APIView authenticates nobody and serves nothing.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["leanvibe.api.permissions.DenyAll"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["leanvibe.api.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "leanvibe.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "NUM_PROXIES": NUM_PROXIES,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# allauth's adapter asks leanvibe.http.client_address too (accounts.adapters); same count here.
ALLAUTH_TRUSTED_PROXY_COUNT = NUM_PROXIES
SPECTACULAR_SETTINGS = {
    "TITLE": "LeanVibe API",
    "VERSION": "1.0.0",
    # Its `check --deploy` hook generates the OpenAPI schema and lists documentation gaps (APIViews
    # without a serializer_class), not deployment risks; leanvibe/tests/test_api_base.py generates
    # the schema, and `manage.py spectacular --validate` lists the gaps.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
}
# Seconds /health/ready reuses its migrations check (it reads every schema) in each process.
HEALTH_MIGRATIONS_CACHE_SECONDS = env.int("HEALTH_MIGRATIONS_CACHE_SECONDS", default=10)
# Bearer token Prometheus must send to read /metrics (and the details of /health/ready); unset,
# they answer only to the machine itself.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# Port on which a Celery worker's main process serves its pool's metrics (0: none). Read from the
# environment (not .env) by leanvibe.multiprocess before the settings load; named here for the docs.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
# Prometheus' multiprocess folder of gunicorn and of a worker with a metrics port (unset: a new
# temporary folder per start). Read by prometheus_client from the environment, not from .env.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
# Self-service sign-ups per client address (platform staff are not limited).
SIGNUP_RATE = env("SIGNUP_RATE", default="10/hour")
# Invitations and resends per inviter, and per tenant (429 rate_limited with Retry-After).
INVITATION_RATE = env("INVITATION_RATE", default="20/hour")
INVITATION_TENANT_RATE = env("INVITATION_TENANT_RATE", default="100/hour")
# Request bodies above this size get a 413 JSON error before anything parses them.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# Outbound HTTP on a tenant's behalf (leanvibe/outbound.py): https to public addresses only, unless
# OUTBOUND_ALLOW_PRIVATE (development and tests) or the address is in OUTBOUND_ALLOWED_NETWORKS.
OUTBOUND_ALLOW_PRIVATE = env.bool(
    "OUTBOUND_ALLOW_PRIVATE", default=env("LEANVIBE_ENV", default="development") != "production"
)
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
OUTBOUND_TIMEOUT = env.float("OUTBOUND_TIMEOUT", default=10.0)  # seconds for a whole fetch
OUTBOUND_CA_BUNDLE = env("OUTBOUND_CA_BUNDLE", default="")  # empty: certifi's CA bundle

# --- work outside requests ------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL.replace("unix://", "redis+socket://", 1))
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    "refill-tenant-schema-pool": {"task": "tenants.tasks.schema_pool_refill", "schedule": 300.0},
    "send-due-followup-emails": {"task": "tenants.tasks.tenant_send_due_followups", "schedule": 3600.0},
    "flush-usage-windows": {"task": "billing.tasks.usage_flush", "schedule": 60.0},
    "report-usage-to-stripe": {"task": "billing.tasks.usage_report", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE.update(
    {
        # Webhook events whose processing failed or never ran are run again (never dropped).
        "billing-retry-webhook-events": {"task": "billing.tasks.webhook_triggers_retry", "schedule": 300.0},
        # Dunning: reminder emails on days 0, 3, 7 and suspension once the grace period is over.
        "billing-dunning-sweep": {"task": "billing.tasks.dunning_sweep", "schedule": 900.0},
    }
)
# Revenue analytics: one MRR snapshot a day (idempotent: a re-run updates the day's row).
CELERY_BEAT_SCHEDULE["billing-revenue-snapshot"] = {
    "task": "billing.tasks.revenue_snapshot_take",
    "schedule": crontab(hour=0, minute=15),
}
FOLLOWUP_EMAIL_DELAY = env.int("FOLLOWUP_EMAIL_DELAY", default=3 * 24 * 3600)
# The coding-agent pipeline runs on its own queue (slow, model-bound work on dedicated workers).
AGENTS_CELERY_QUEUE = env("AGENTS_CELERY_QUEUE", default="agents")
CELERY_TASK_ROUTES = {"agents.tasks.agent_task_run": {"queue": AGENTS_CELERY_QUEUE}}
# A task in progress whose heartbeat is older than this is a lost worker's: requeued once, then failed.
AGENTS_HEARTBEAT_TIMEOUT = env.int("AGENTS_HEARTBEAT_TIMEOUT", default=10 * 60)
# Unlock emails whose message was lost or whose send failed.
CELERY_BEAT_SCHEDULE["journey-unsent-unlock-emails"] = {
    "task": "tenants.journey.tasks.journey_send_unsent_unlock_emails",
    "schedule": 300.0,
}
CELERY_BEAT_SCHEDULE["agents-tasks-sweep"] = {"task": "agents.tasks.agent_tasks_sweep", "schedule": 60.0}
# check_platform's proof that beat (and a worker of the default queue) is alive.
CELERY_BEAT_SCHEDULE["platform-heartbeat"] = {
    "task": "leanvibe.platform.tasks.platform_heartbeat",
    "schedule": 60.0,
}
# The gauges /metrics exposes (tenants, MRR, dunning, queue lengths), computed once for every scrape.
CELERY_BEAT_SCHEDULE["metrics-snapshot"] = {
    "task": "leanvibe.platform.tasks.metrics_snapshot",
    "schedule": 60.0,
}
# Where manage.py backup writes when no target is given: a folder, a file, or s3://bucket/prefix/
# (the Kubernetes CronJob leanvibe-backup sets it).
BACKUP_TARGET = env("BACKUP_TARGET", default=".")
# manage.py backup --encrypt / restore: a Fernet key (32 url-safe base64 bytes).
BACKUP_ENCRYPTION_KEY = env("BACKUP_ENCRYPTION_KEY", default="")
# Folder of pg_dump / pg_restore; empty: pgserver's (16.x), else PATH.
PG_BIN_DIR = env("PG_BIN_DIR", default="")
# Backups and tenant archives to s3://bucket/...: an S3-compatible service's URL (empty: AWS) and
# region. Credentials are boto3's own (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a role).
BACKUP_S3_ENDPOINT_URL = env("BACKUP_S3_ENDPOINT_URL", default="")
BACKUP_S3_REGION = env("BACKUP_S3_REGION", default="")
# check_platform fails when a data folder's file system has less free space than this.
PLATFORM_CHECK_MIN_FREE_BYTES = env.int("PLATFORM_CHECK_MIN_FREE_BYTES", default=2**30)

# --- agents (models for the coding agents: agents/inference/) ---------------------------------
# Folder of the installed models (manage.py agents_install_model) and of their downloaded wheels.
AGENTS_MODELS_DIR = Path(
    env(
        "AGENTS_MODELS_DIR",
        default=str(Path(env("LEANVIBE_DATA_DIR", default=str(BASE_DIR / ".data"))) / "models"),
    )
)
# Seconds an OpenAI-compatible model server may take to connect and between two streamed pieces.
AGENTS_BACKEND_TIMEOUT = env.float("AGENTS_BACKEND_TIMEOUT", default=60.0)

# --- billing (Stripe through dj-stripe; billing/stripe_api.py configures the client) ----------
# Billing is on when STRIPE_SECRET_KEY is set; without it no Stripe call is made, new tenants get
# no customer and no subscription, and every tenant keeps its plan.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
# The Stripe API's base URL: the local Stripe-compatible server in development and tests.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com")
# Base URL of Billing Meter events (the v2 API host on real Stripe); defaults to STRIPE_API_BASE
# when that is not Stripe's own.
STRIPE_METER_EVENTS_API_BASE = env(
    "STRIPE_METER_EVENTS_API_BASE",
    default="https://meter-events.stripe.com"
    if STRIPE_API_BASE == "https://api.stripe.com"
    else STRIPE_API_BASE,
)
STRIPE_API_VERSION = env("STRIPE_API_VERSION", default="2026-08-26.dahlia")
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
# Signing secret of an endpoint made in the Stripe dashboard (whsec_...); with it,
# `manage.py billing_webhook_setup --id we_...` stores the endpoint for /stripe/webhook/.
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
DJSTRIPE_SUBSCRIBER_MODEL = "tenants.Tenant"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
# dj-stripe's migrations squashed into one (same tables, seconds instead of minutes to apply);
# billing/migrations_djstripe/README.md says why and how to regenerate it on an upgrade.
MIGRATION_MODULES = {"djstripe": "billing.migrations_djstripe"}
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Days a trial lasts without a card, and days of grace after a failed payment before suspension.
BILLING_TRIAL_DAYS = env.int("BILLING_TRIAL_DAYS", default=14)
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=14)
# Test mode only: each new Stripe customer gets its own test clock, so a tenant's billing life
# (trial end, renewals, failed payments, dunning) can be simulated by advancing it
# (`manage.py billing_test_clock`). Refused with a live key.
BILLING_TEST_CLOCKS = env.bool("BILLING_TEST_CLOCKS", default=False)
# Days after the first failed payment on which the billing email gets a reminder.
BILLING_DUNNING_EMAIL_DAYS = (0, 3, 7)

# --- coding agents (agents/) ------------------------------------------------------------------
_data_dir = Path(env("LEANVIBE_DATA_DIR", default=str(BASE_DIR / ".data")))
# Defaults of a new Agent profile: backend "mlx" (in-process mlx-lm) or "http" (OpenAI-compatible).
AGENTS_BACKEND = env("AGENTS_BACKEND", default="mlx")
# The model folder of new profiles: SmolLM2-135M once installed in AGENTS_MODELS_DIR (`manage.py
# agents_install_model smollm2`, which `make run` does on its first start; "INSTALLED" is the
# installer's completion marker, agents.inference.install.MARKER_FILE), else the tiny test model.
# `make run` installs SmolLM2 unless AGENTS_INSTALL_MODEL is false (or run_platform --no-model).
AGENTS_INSTALL_MODEL = env.bool("AGENTS_INSTALL_MODEL", default=True)
_smollm2 = AGENTS_MODELS_DIR / "smollm2"
AGENTS_MODEL_PATH = env(
    "AGENTS_MODEL_PATH",
    default=str(_smollm2 if (_smollm2 / "INSTALLED").is_file() else _data_dir / "models" / "tiny-qwen2"),
)
# Root URL of the OpenAI-compatible inference server of "http" profiles without a base URL of their
# own (mlx_lm.server, llama.cpp's server, vLLM), e.g. https://inference.internal:8080.
AGENTS_INFERENCE_URL = env("AGENTS_INFERENCE_URL", default="")
# Generated files: <root>/<schema>/<task id>/ (the workspace) and <root>/.runs/ (sandbox run folders).
AGENTS_WORKSPACE_ROOT = Path(env("AGENTS_WORKSPACE_ROOT", default=str(_data_dir / "agents")))
# Builds the ModelBackend of an Agent profile (agents.inference.factory.backend_for_agent).
AGENTS_BACKEND_FACTORY = env("AGENTS_BACKEND_FACTORY", default="agents.inference.factory.backend_for_agent")
# Self-service data exports (accounts.exports): archives under <root>/<schema>/<id>.zip, outside
# the agents' workspaces (they count against no quota), deleted EXPORTS_KEEP_DAYS after written.
EXPORTS_ROOT = Path(env("EXPORTS_ROOT", default=str(_data_dir / "exports")))
EXPORTS_KEEP_DAYS = 7
EXPORTS_LINK_MAX_AGE = 24 * 3600  # seconds a download link handed out by the API or page works
CELERY_BEAT_SCHEDULE["accounts-data-exports-sweep"] = {
    "task": "accounts.tasks.data_exports_sweep",
    "schedule": 3600.0,
}
# Entries kept in each task's Redis event stream (XADD MAXLEN ~); the TaskEvent rows keep all.
AGENTS_STREAM_MAXLEN = env.int("AGENTS_STREAM_MAXLEN", default=2000)

# --- email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
if env("EMAIL_URL", default=""):  # e.g. smtp+tls://user:password@smtp.example.com:587
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="LeanVibe <hello@leanvibe.localhost>")

# --- static, i18n ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

SESSION_COOKIE_HTTPONLY = True
if SITE_SCHEME == "https":
    # Behind a TLS-terminating ingress that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # A plain-HTTP request that reaches the app (X-Forwarded-Proto not https) is redirected to
    # https. Probes are answered before this (leanvibe.health runs first), so they never are.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
    # Tenants are subdomains of BASE_DOMAIN, served by the same TLS ingress.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # The `preload` directive consents to inclusion in browsers' HSTS preload lists (once the
    # domain is submitted to hstspreload.org, which also wants SECURE_HSTS_SECONDS >= 31536000).
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts and styles only from our own
# static files, no inline script or style, no plugins, no framing. Images may also be data: URIs
# (the QR code of two-factor enrolment). form-action is left open on purpose: signing in with SSO
# posts to our own page, which redirects to the identity provider.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF],
        "style-src": [csp_constants.SELF],
        "img-src": [csp_constants.SELF, "data:"],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.SELF],
        "frame-ancestors": [csp_constants.NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}
