"""Runtime settings, read from the environment (prefix ``CHUONG_``) and an optional ``.env`` file.

Secrets are ``SecretStr`` so that they never appear in reprs, logs or error pages.
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_FCM_ENDPOINT = "https://fcm.googleapis.com"
# How long arq lets one job run (workers/settings.py); the delivery lease must outlast it.
JOB_TIMEOUT_SECONDS = 60
# The id of CHUONG_AUDIT_HMAC_KEY in the audit keyring (and of every row chained before key ids).
AUDIT_DEFAULT_KID = "default"
AUDIT_KID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,32}")


def _cidr(setting: str, key: str, value: str) -> str:
    """One address range, its host bits clear: "10.0.0.5/24" is refused rather than silently
    widened to the whole /24 (the API clients' allow-lists follow the same rule)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(
            f"{setting}: {key!r}: {value!r} is not an address range (CIDR) with its host bits clear"
        ) from exc


class SessionLimitOverride(BaseModel):
    """One role's session lifetime, overriding the staff/member defaults."""

    model_config = ConfigDict(extra="forbid")

    max_seconds: int | None = Field(default=None, ge=60)
    idle_seconds: int | None = Field(default=None, ge=0)


class Settings(BaseSettings):
    # UTF-8 whatever the host's locale: .env files carry Vietnamese (the TOTP issuer, SMS text).
    model_config = SettingsConfigDict(
        env_prefix="CHUONG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # A typo ("prod", "staging") must not quietly turn the production start-up checks off.
    environment: Literal["development", "test", "bench", "production"] = "development"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/chuong"
    redis_url: str = "redis://127.0.0.1:6379/0"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # Server-side bounds of every connection the service opens (core/db.py connect_args): no
    # statement, lock wait or idle transaction can hold a pooled connection for ever.
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    db_lock_timeout_ms: int = Field(default=5_000, ge=50)
    db_idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=100)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # Connections (plus as many again on demand) for writes that must outlive a failing request:
    # failed sign-ins, refusals, revocations (core/db.py detached_transaction).
    db_detached_pool_size: int = Field(default=3, ge=1, le=50)
    # --- TLS to PostgreSQL and Redis (core/tls.py, docs/security.md "TLS and key rotation") ---
    # verify-full: every connection (request and detached pools, migrations, the backup drill's
    # source) is TLS, and the server must show a certificate for the URL's host name signed by
    # db_ssl_root_cert (None: the system's CA store). prefer: asyncpg's default (and libpq's, so
    # PGSSLMODE still applies): TLS when the server offers it, its certificate unchecked, which
    # stops a passive listener but not a machine in the middle.
    db_ssl_mode: Literal["prefer", "verify-full"] = "prefer"
    db_ssl_root_cert: str | None = None
    # A rediss:// redis_url turns TLS on for every Redis connection (the shared client, arq, the
    # pub/sub listeners, the rate limiter), with the host name always checked. The CA that signed
    # the server's certificate (None: the system's store), and a client certificate and key for
    # servers that ask for one (redis-server's default, tls-auth-clients yes).
    redis_ssl_ca_file: str | None = None
    redis_ssl_cert_file: str | None = None
    redis_ssl_key_file: str | None = None
    # Redis Sentinel (docs/operations.md "Several hosts"): the Sentinels' host:port, comma-separated.
    # With them, the master is whichever server the Sentinels name for ``redis_sentinel_master``,
    # found again after a failover; CHUONG_REDIS_URL then gives only the database number and the
    # password (its host and port are not used).
    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    redis_sentinel_master: str = Field(default="chuong", min_length=1, max_length=64)

    # --- secrets (never stored in the database) ---
    # Keys for field encryption (phone, citizen ID, TOTP secrets): comma-separated Fernet keys,
    # the first encrypts, all decrypt, so keys can be rotated.
    field_encryption_keys: SecretStr
    # HMAC keys of the audit hash chain (docs/security.md "Rotating the audit key"), like the JWT
    # keys: JSON {"kid": "secret", ...}; ``audit_active_kid`` chains new rows, and each row names
    # its key, so every key listed keeps verifying the rows it chained. CHUONG_AUDIT_HMAC_KEY, the
    # single key of installations from before key ids, is the key "default": rows from before
    # carry that id, and it chains new rows while no active kid is set.
    audit_hmac_key: SecretStr | None = None
    audit_hmac_keys: SecretStr | None = None
    audit_active_kid: str | None = None
    # JWT signing keys as JSON {"kid": "secret", ...}; ``jwt_active_kid`` signs, all verify.
    jwt_keys: SecretStr
    jwt_active_kid: str
    # Pepper mixed into API-key and refresh-token hashes.
    token_pepper: SecretStr

    jwt_issuer: str = "chuong"
    jwt_audience: str = "chuong-api"
    access_token_ttl_seconds: int = Field(default=600, ge=60)
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    # --- session lifetimes (auth/session_limits.py, docs/security.md "Session lifetimes") ---
    # Staff (every role but member) follow NIST SP 800-63B AAL2: sign in again at least every
    # 12 hours, and after 30 minutes without a request. Readers' devices (member) live
    # refresh_token_ttl_seconds, with no idle limit unless member_session_idle_seconds is set.
    staff_session_max_seconds: int = Field(default=12 * 3600, ge=60)
    staff_session_idle_seconds: int = Field(default=30 * 60, ge=60)
    member_session_idle_seconds: int = Field(default=0, ge=0)  # 0: no idle limit
    # Per role, as JSON (CHUONG_SESSION_LIMITS_BY_ROLE):
    # {"system_admin": {"max_seconds": 28800, "idle_seconds": 900}}; idle_seconds 0: no idle limit.
    session_limits_by_role: dict[str, SessionLimitOverride] = Field(default_factory=dict)

    # --- passwords and 2FA ---
    password_min_length: int = 12
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    password_max_age_days: int = 180
    totp_issuer: str = "Chuông"
    step_up_max_age_seconds: int = 300
    login_backoff_after_failures: int = 3
    login_backoff_max_seconds: int = 900
    login_lockout_after_failures: int = 10
    login_lockout_seconds: int = 1800

    # --- passkeys and security keys (WebAuthn; docs/security.md "Passkeys and security keys") ---
    # The relying party: the registrable domain the console is served under (passkeys are bound
    # to it for ever: changing it orphans every enrolled passkey), and the exact origins
    # (scheme://host[:port]) a browser may run a ceremony from.
    webauthn_rp_id: str = "localhost"
    webauthn_rp_name: str = "Chuông"
    webauthn_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8000"]
    )
    # How long a ceremony's challenge stays usable (once).
    webauthn_challenge_seconds: int = Field(default=120, ge=30, le=600)
    # Roles that must sign in with a passkey once they hold one (D-22: leaders get the strongest
    # factor). Add system_admin, unit_admin, publisher to extend the rule (comma-separated).
    passkey_required_roles: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["leader"])

    # --- HTTP ---
    max_body_bytes: int = 1_048_576
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_token: SecretStr | None = None
    # --- allowed networks (auth/networks.py, docs/security.md "Allowed networks") ---
    # JSON mapping a permission or a role to the address ranges (CIDR) it may be used from:
    # {"users:write": ["10.20.0.0/16"], "system_admin": ["10.20.0.0/16", "fd00:20::/48"]}.
    # A permission: every request that needs it; a role: every sign-in and request of its
    # accounts. Unset or {}: no rule, any address (the development default).
    allowed_networks: dict[str, list[str]] = Field(default_factory=dict)

    # --- abuse control (requests per minute unless said otherwise) ---
    rate_limit_per_account: str = "300/minute"
    rate_limit_per_client: str = "1200/minute"
    rate_limit_per_ip: str = "600/minute"
    rate_limit_login_per_ip: str = "30/minute"
    # An identity that hits its limit this many times within ``abuse_window_seconds`` is blocked.
    abuse_strikes: int = 5
    abuse_window_seconds: int = 60
    abuse_block_seconds: int = 900

    # --- push providers (docs/delivery.md "Providers") ---
    # Endpoints, not emulator knowledge: the defaults are Google's and Apple's. Local runs and tests
    # point these at the provider emulator (`python -m emulator`, which writes a service-account
    # file and a .p8 key for them); production refuses anything local (core/production.py).
    # A service-account JSON key file; its token_uri says where OAuth2 tokens come from.
    fcm_credentials_file: str | None = None
    # None: the project of the service-account file.
    fcm_project_id: str | None = None
    # Base URL of FCM HTTP v1 (".../v1/projects/<id>/messages:send" is appended).
    fcm_endpoint: str = DEFAULT_FCM_ENDPOINT
    # "http1": firebase-admin encodes and maps errors, aiohttp HTTP/1.1 keep-alive sends (≈0.3 ms
    # CPU a message); "firebase_admin": the library's own send_each_async over httpx HTTP/2
    # (≈1.9 ms). See notifications/providers/fcm_http1.py.
    fcm_transport: Literal["http1", "firebase_admin"] = "http1"
    # Concurrent FCM requests per worker process; HTTP/1.1 carries one per connection, so this
    # is also the keep-alive pool size. A worker sends at most this many divided by the round
    # trip: 250 keeps one worker busy (≈ 4,000 a second) up to ≈ 50 ms from FCM's front end
    # (docs/delivery.md "Provider latency"); raise it for a farther one.
    fcm_max_in_flight: int = Field(default=250, ge=1, le=1000)
    fcm_timeout_seconds: float = Field(default=10.0, gt=0)
    # Token auth: Apple's .p8 key, its 10-character key id, the team id, the app's bundle id.
    apns_key_file: str | None = None
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None
    # None: Apple's host for each APNs environment (api.push.apple.com, api.sandbox.push.apple.com).
    apns_endpoint_host: str | None = None
    apns_endpoint_port: int = Field(default=443, ge=1, le=65535)
    apns_timeout_seconds: float = Field(default=10.0, gt=0)
    apns_max_connections: int = 10
    # APNs requests in flight per provider and worker process (notifications/providers/apns.py):
    # past this gate a request is on the wire and a cancel can no longer stop it. Provider
    # latency bounds throughput at about this many divided by the round trip (as for FCM); they
    # are multiplexed over the connections, each up to the server's stream limit.
    apns_max_in_flight: int = Field(default=250, ge=1, le=1000)
    # An extra CA certificate (PEM) trusted for FCM, APNs and OAuth2 besides the system store.
    provider_ca_file: str | None = None
    # A claimed batch is leased this long; a killed worker's rows are due again after it. In
    # production longer than a job may run (core/production.py), or a slow batch's rows would be
    # claimed again while it still sends; tests shorten it to see recovery in seconds.
    delivery_lease_seconds: int = Field(default=90, ge=1)
    # Due rows older than this are re-queued by the reconciler (a lost job or a flushed Redis).
    reconcile_grace_seconds: int = Field(default=30, ge=1)
    # The reconciler runs at every multiple of this second within each minute (a cron step), so
    # it divides 60 or it runs at uneven gaps; 60: once a minute.
    reconcile_every_seconds: int = Field(default=30, ge=1, le=60)
    # Send batches a worker starts at once; each may overlap one batch started before it, which
    # hands the slot on once its first two chunks are at the provider (notifications/delivery.py).
    # A batch has at most two chunks (250 rows) sent and unrecorded, so a killed worker re-sends
    # at most 2 × this many × 250 rows.
    send_batches_in_flight: int = Field(default=1, ge=1)
    # Sensitive notifications show a generic localised line ("Bạn có thông báo mới"); off → silent.
    sensitive_visible_alert: bool = True

    # --- pacing: one send budget in Redis shared by every worker (docs/delivery.md) ---
    pacing_enabled: bool = True
    # FCM's project-wide quota ("messages per minute"; 600,000 by default for a project).
    fcm_quota_per_minute: int = Field(default=600_000, ge=1)
    # Apple publishes no number: a pace that keeps the connections from being throttled.
    apns_pace_per_second: float = Field(default=10_000.0, gt=0)
    # Bucket depth in seconds of the rate: how much may go at once after an idle spell.
    pacing_burst_seconds: float = Field(default=1.0, gt=0)
    # While high/emergency pushes want permits (and this long after they last asked), normal
    # priority traffic may use at most this share of the rate; breaking news gets the rest.
    pacing_bulk_share: float = Field(default=0.2, ge=0, le=1)
    pacing_high_demand_seconds: float = Field(default=2.0, gt=0)
    # A batch waits at most this long for permits; the rest goes back to the outbox as a retry.
    pacing_max_wait_seconds: float = Field(default=10.0, ge=0)
    # Every worker pauses this long after QUOTA_EXCEEDED when FCM sends no Retry-After.
    pacing_quota_backoff_seconds: float = Field(default=60.0, ge=0)
    # Prometheus metrics of each worker process (GET /metrics, behind CHUONG_METRICS_TOKEN like
    # the API's; docs/observability.md). A worker listens on the first free port from this one
    # up (several workers on one host get 9101, 9102, ...); 0 turns the endpoint off.
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # --- links in pushes, inbox items and the console (core/links.py, docs/news.md) ---
    # The apps' own URL schemes a deep link may use (CHUONG_DEEP_LINK_SCHEMES, comma-separated).
    # javascript:, data:, file:, http: and the like are refused even if listed here.
    deep_link_schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["chuong-portal", "chuong-tracking"]
    )
    # Hosts an https link may point to (deep links and news images). "dangcongsan.vn" is that
    # host only; "*.dangcongsan.vn" is any of its subdomains (a deliberate, separate entry).
    deep_link_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["dangcongsan.vn", "*.dangcongsan.vn"]
    )

    # --- devices ---
    device_limit_per_user: int = Field(default=20, ge=1)
    device_stale_days: int = 270
    # Registrations without credentials (new anonymous portal devices, docs/delivery.md
    # "Devices"), counted per network: an IPv4 /24 (carrier NAT puts thousands of phones behind
    # one address, and an abuser rarely holds a whole /24 less than one address) or an IPv6 /64
    # (one subscriber's). Generous for a crowd behind one NAT, bounded for a script; the global
    # limit caps every anonymous registration of the service together (a distributed flood).
    device_registration_limit_per_network: str = "120/minute"
    device_registration_limit_global: str = "3000/minute"
    device_registration_ipv4_prefix: int = Field(default=24, ge=8, le=32)
    device_registration_ipv6_prefix: int = Field(default=64, ge=32, le=128)

    # --- how long records are kept (notifications/retention.py, docs/operations.md "Retention") ---
    # Days, or "forever" (kept for ever). The audit log is not here: it is archived, never purged
    # (``chuong audit archive``). The nightly purge applies them in bounded batches.
    # Delivery rows (one per notification × device) of notifications finished this long ago.
    retention_deliveries_days: int = Field(default=30, ge=1, le=36500)
    # Readers' receipts (received / opened): summed onto their notification first, so its stats
    # keep the totals; only the per-language and per-platform split goes.
    retention_receipts_days: int | None = Field(default=365, ge=7, le=36500)
    # SMS rows that reached an end (sent, failed, capped, no phone) and the daily cap counters.
    retention_sms_days: int | None = Field(default=365, ge=2, le=36500)
    # Finished notifications with everything hanging off them: inbox items and read states,
    # receipts, SMS rows, deliveries. News articles stay (their link to the push is cleared).
    retention_notifications_days: int | None = Field(default=730, ge=30, le=36500)
    # The tracking reminder ledger's settled rows. At least 180 days: a row is what stops a
    # reminder from being sent twice, and the longest reminder window (60 working days after a
    # deadline, tracking/rules.py) must be over before its row may go.
    retention_reminders_days: int | None = Field(default=365, ge=180, le=36500)
    # Rows one purge transaction deletes: each batch commits, so no purge holds a long transaction.
    retention_batch_size: int = Field(default=5000, ge=100, le=100_000)

    # --- the four-eyes rule of pushes (D-04, docs/security.md "Pushes and the four-eyes rule") ---
    # A portal push outside the news workflow reaches at most this many named accounts/devices.
    direct_push_max_recipients: int = Field(default=1000, ge=1, le=10_000)

    # --- tracking app (docs/tracking.md) ---
    # Overrides of tracking/rules.py's reminder policy, as a JSON object (CHUONG_TRACKING_RULES).
    tracking_rules: dict[str, Any] = Field(default_factory=dict)
    # Records accepted in one intake request (bulk upsert of tasks or KPIs).
    tracking_max_batch: int = Field(default=5000, ge=1, le=20000)
    # Ledger rows one sender transaction turns into notifications.
    tracking_send_chunk: int = Field(default=500, ge=1, le=5000)

    # --- SMS emergency fallback (D-31, docs/sms.md) ---
    # With no gateway URL nothing is sent: each SMS waits as "not_configured" (production refuses
    # to start without one). Local runs point it at the emulator's sink (/sms/send).
    sms_gateway_url: str | None = None
    sms_gateway_username: str | None = None  # HTTP basic auth when set ...
    sms_gateway_password: SecretStr | None = None
    sms_gateway_api_key: SecretStr | None = None  # ... or "Authorization: Bearer <key>"
    sms_sender_name: str = "CHUONG"
    # The whole text: SMS never carry notification content (titles, bodies, task details).
    sms_message_template: str = "Bạn có thông báo khẩn trên ứng dụng Chuông. Vui lòng mở ứng dụng."
    sms_timeout_seconds: float = Field(default=10.0, gt=0)
    # (a) emergency notifications: SMS when no device of the user reported received/opened in time.
    sms_ack_window_minutes: int = Field(default=10, ge=1)
    # (b) degraded mode: emergency and high priority, after this shorter window.
    sms_degraded_ack_window_minutes: int = Field(default=2, ge=0)
    # Notifications older than this are never considered (a late switch-on does not SMS old news).
    sms_lookback_minutes: int = Field(default=360, ge=1)
    # Kinds (prefix match) that never go by SMS whatever their priority: routine reminders.
    sms_never_kinds: Annotated[list[str], NoDecode] = Field(
        # tracking/sender.py sends "tracking.reminder.<rule>" and "tracking.digest".
        default_factory=lambda: ["tracking.reminder", "tracking.digest", "reminder", "digest"]
    )
    sms_daily_cap_per_user: int = Field(default=3, ge=0)
    sms_daily_cap_per_unit: int = Field(default=100, ge=0)
    sms_daily_cap_total: int = Field(default=1000, ge=0)
    sms_max_attempts: int = Field(default=3, ge=1)
    sms_retry_base_seconds: float = Field(default=30.0, ge=0)
    sms_sweep_batch: int = Field(default=500, ge=1)
    sms_send_concurrency: int = Field(default=10, ge=1)
    # Push circuit breaker: error rate per provider over a sliding window of Redis buckets.
    push_breaker_window_seconds: int = Field(default=300, ge=10)
    push_breaker_min_requests: int = Field(default=50, ge=1)
    push_breaker_error_rate: float = Field(default=0.5, gt=0, le=1)

    # --- push badges (docs/inbox.md "The badge of pushes") ---
    # Each push carries its reader's unread count; off: no badge and no badge queries.
    push_badges: bool = True

    # --- inbox streams (docs/inbox.md "GET /v1/inbox/stream") ---
    # Open Server-Sent Event streams per reader (account or device). Each holds a Redis
    # connection and a socket; an app needs one per screen, a few per reader at most.
    inbox_streams_per_reader: int = Field(default=5, ge=1, le=100)
    # The console's live view (docs/console.md): streams per operator account. Each reads the
    # figures and checks the sign-in every few seconds; a few tabs, not a script's thousands.
    console_live_streams_per_user: int = Field(default=5, ge=1, le=100)

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: object) -> object:
        # "Production" or " production" must not slip past `== "production"` checks
        # (core/production.py, the demo seeder).
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "trusted_proxies",
        "cors_origins",
        "sms_never_kinds",
        "deep_link_schemes",
        "deep_link_hosts",
        "redis_sentinels",
        "webauthn_origins",
        "passkey_required_roles",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _valid_networks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # Found at start-up: a typo must not turn into "no rule" or into a refusal of everyone.
        # The keys are checked against the roles and permissions by auth/networks.py (core does
        # not know them), also at start-up.
        checked: dict[str, list[str]] = {}
        for key, cidrs in value.items():
            if not cidrs:
                raise ValueError(
                    f"CHUONG_ALLOWED_NETWORKS: {key!r} lists no network and would refuse every"
                    " address; remove the key to lift its rule"
                )
            checked[key.strip()] = [_cidr("CHUONG_ALLOWED_NETWORKS", key, cidr) for cidr in cidrs]
        return checked

    @field_validator(
        "retention_receipts_days",
        "retention_sms_days",
        "retention_notifications_days",
        "retention_reminders_days",
        mode="before",
    )
    @classmethod
    def _forever(cls, value: object) -> object:
        # An environment variable cannot be null: "forever" says it in words.
        if isinstance(value, str) and value.strip().lower() == "forever":
            return None
        return value

    @field_validator(
        "rate_limit_per_account",
        "rate_limit_per_client",
        "rate_limit_per_ip",
        "rate_limit_login_per_ip",
        "device_registration_limit_per_network",
        "device_registration_limit_global",
    )
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        # A typo here would otherwise turn every request into a 500.
        from limits import parse

        parse(value)
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"CHUONG_REDIS_SENTINELS: {entry!r} is not host:port")
        return value

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [
            (entry.rpartition(":")[0].strip("[]"), int(entry.rpartition(":")[2]))
            for entry in self.redis_sentinels
        ]

    @model_validator(mode="after")
    def _tls_settings_agree(self) -> Settings:
        # A CA file next to an unverified connection reads like checked TLS but is not: refuse the
        # contradiction rather than connect without checking.
        if self.db_ssl_root_cert and self.db_ssl_mode != "verify-full":
            raise ValueError("CHUONG_DB_SSL_ROOT_CERT is set but CHUONG_DB_SSL_MODE is not verify-full")
        redis_files = [self.redis_ssl_ca_file, self.redis_ssl_cert_file, self.redis_ssl_key_file]
        if any(redis_files) and not self.redis_url.startswith("rediss://"):
            raise ValueError("CHUONG_REDIS_SSL_* files are set but CHUONG_REDIS_URL is not rediss://")
        if self.redis_sentinels and self.redis_url.startswith("rediss://"):
            # arq's Sentinel pool takes only an on/off TLS flag, not the CA and client files: its
            # connections would not be checked as every other Redis connection is (core/tls.py).
            raise ValueError("CHUONG_REDIS_SENTINELS with a rediss:// URL is not supported")
        if bool(self.redis_ssl_cert_file) != bool(self.redis_ssl_key_file):
            raise ValueError("CHUONG_REDIS_SSL_CERT_FILE and CHUONG_REDIS_SSL_KEY_FILE go together")
        return self

    @model_validator(mode="after")
    def _audit_keys_usable(self) -> Settings:
        # Found at start-up, as a missing CHUONG_AUDIT_HMAC_KEY always was, not at the first write.
        self.audit_keyring()
        return self

    def audit_keyring(self) -> dict[str, bytes]:
        """Every audit key by its id; the active one is ``audit_signing_kid()``."""
        keys: dict[str, str] = {}
        if self.audit_hmac_keys is not None:
            try:
                listed = json.loads(self.audit_hmac_keys.get_secret_value())
            except ValueError as exc:
                raise ValueError('CHUONG_AUDIT_HMAC_KEYS must be a JSON object {"kid": "secret"}') from exc
            if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
                raise ValueError('CHUONG_AUDIT_HMAC_KEYS must be a JSON object {"kid": "secret"}')
            keys = {str(kid): secret for kid, secret in listed.items()}
        if self.audit_hmac_key is not None:
            if AUDIT_DEFAULT_KID in keys:
                raise ValueError(
                    f"CHUONG_AUDIT_HMAC_KEYS names the key {AUDIT_DEFAULT_KID!r}:"
                    " that id is CHUONG_AUDIT_HMAC_KEY's"
                )
            keys[AUDIT_DEFAULT_KID] = self.audit_hmac_key.get_secret_value()
        bad = [kid for kid in keys if not AUDIT_KID_PATTERN.fullmatch(kid)]
        if bad:
            raise ValueError(f"audit key ids must be 1-32 letters, digits, '.', '_' or '-': {bad}")
        if not keys:
            raise ValueError("no audit key: set CHUONG_AUDIT_HMAC_KEYS (or CHUONG_AUDIT_HMAC_KEY)")
        if self.audit_signing_kid() not in keys:
            raise ValueError(
                f"CHUONG_AUDIT_ACTIVE_KID {self.audit_signing_kid()!r} is not a configured audit key"
            )
        return {kid: secret.encode() for kid, secret in keys.items()}

    def audit_signing_kid(self) -> str:
        return self.audit_active_kid or AUDIT_DEFAULT_KID

    def jwt_keyring(self) -> dict[str, str]:
        keys = json.loads(self.jwt_keys.get_secret_value())
        if not isinstance(keys, dict) or self.jwt_active_kid not in keys:
            raise ValueError("CHUONG_JWT_KEYS must be a JSON object containing CHUONG_JWT_ACTIVE_KID")
        return {str(kid): str(secret) for kid, secret in keys.items()}


@lru_cache
def get_settings() -> Settings:
    return Settings()  # values come from the environment
