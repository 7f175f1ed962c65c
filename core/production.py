"""Production start-up checks: refuse to run with a missing or unsafe setting.

`chuong serve`, `chuong worker`, the app factory (`cli/asgi.py`) and the worker's start-up call
`ensure_production_ready`. When ``CHUONG_ENVIRONMENT`` is ``production`` it collects *every*
problem (missing provider credentials, development values, weak secrets, debug logging, open
CORS or metrics, the database superuser ...) and raises one error naming them all, so that an
operator fixes the configuration in one pass instead of one restart per setting. Other
environments are not checked: development, tests and benchmarks run against the emulator.

Each check is a small function returning the problems it found; add new ones to `CHECKS`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from core.config import AUDIT_DEFAULT_KID, JOB_TIMEOUT_SECONDS, Settings
from core.logging import get_logger
from core.tls import is_tls_redis_url, postgres_ssl_context

PRODUCTION = "production"
# Values the provider emulator and the old defaults used: never a real Apple or Google identity.
EMULATOR_PROJECT_IDS = frozenset({"chuong-emulator"})
EMULATOR_APNS_IDS = frozenset({"EMULATORK1", "EMULATORT1"})
# Host names that can only be this machine, a development container or the emulator.
LOCAL_HOST_NAMES = frozenset({"localhost", "emulator", "host.docker.internal"})
# Words that mark a value as a placeholder or an example, never a generated secret. At six or
# more characters a random 43-character token contains one by chance with odds below 1e-7.
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "example", "placeholder", "secret", "password")
MIN_SECRET_CHARS = 32
# A generated 32-character secret has far more distinct characters than this ("aaaa…", "1234…").
MIN_DISTINCT_CHARS = 12
# OWASP's floor for argon2id (m=19 MiB, t=2); the defaults are above it, test settings below.
MIN_ARGON2_MEMORY_KIB = 19_456
MIN_ARGON2_TIME_COST = 2


class ProductionConfigError(RuntimeError):
    """The configuration is not fit for production; `problems` names every setting at fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"refusing to start in production, {len(problems)} setting(s) to fix:\n{lines}")


def is_production(settings: Settings) -> bool:
    return settings.environment.strip().lower() == PRODUCTION


def ensure_production_ready(settings: Settings, *, extra_problems: Iterable[str] = ()) -> None:
    """Raise `ProductionConfigError` naming every problem; a no-op outside production."""
    if not is_production(settings):
        return
    problems = [*production_problems(settings), *extra_problems]
    if problems:
        raise ProductionConfigError(problems)


def production_problems(settings: Settings) -> list[str]:
    return [problem for check in CHECKS for problem in check(settings)]


def production_warnings(settings: Settings) -> list[str]:
    """What production allows but an operator should see at every start: for now, connections
    to PostgreSQL or Redis on another host without verified TLS, and administration open to any
    address. Not refused, because the service cannot tell one host's private network (the compose
    stack's "postgres" and "redis") from a shared one, nor a deployment reachable only through the
    agencies' VPN from one on the Internet; docs/security.md "TLS and key rotation" and "Allowed
    networks" say when each is needed."""
    if not is_production(settings):
        return []
    return [*_unverified_connections(settings), *_open_networks(settings)]


def log_production_warnings(settings: Settings) -> None:
    """Called by the app factory and the worker's start-up once logging is configured."""
    log = get_logger("chuong.production")
    for warning in production_warnings(settings):
        log.warning("production_warning", warning=warning)


# --- push and SMS providers --------------------------------------------------------------


def _fcm(settings: Settings) -> list[str]:
    problems = _endpoint("CHUONG_FCM_ENDPOINT", settings.fcm_endpoint)
    if settings.fcm_project_id in EMULATOR_PROJECT_IDS:
        problems.append(f"CHUONG_FCM_PROJECT_ID: {settings.fcm_project_id!r} is the emulator's project")
    path = settings.fcm_credentials_file
    if not path:
        return [*problems, "CHUONG_FCM_CREDENTIALS_FILE: not set (the FCM service-account key file)"]
    name = "CHUONG_FCM_CREDENTIALS_FILE"
    try:
        account = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [*problems, f"{name}: cannot read a JSON key from {path} ({type(exc).__name__})"]
    if not isinstance(account, dict) or account.get("type") != "service_account":
        return [*problems, f"{name}: {path} is not a service-account key file"]
    for field in ("private_key", "client_email", "token_uri"):
        if not account.get(field):
            problems.append(f"{name}: {path} has no {field}")
    if account.get("token_uri"):
        problems += _endpoint(f"{name} (token_uri)", str(account["token_uri"]))
    if not settings.fcm_project_id and not account.get("project_id"):
        problems.append(f"{name}: {path} names no project_id and CHUONG_FCM_PROJECT_ID is not set")
    if account.get("project_id") in EMULATOR_PROJECT_IDS:
        problems.append(f"{name}: {path} is the emulator's service account ({account['project_id']!r})")
    return problems


def _apns(settings: Settings) -> list[str]:
    problems: list[str] = []
    if settings.apns_endpoint_host is not None:
        problems += _host("CHUONG_APNS_ENDPOINT_HOST", settings.apns_endpoint_host)
    path = settings.apns_key_file
    if not path:
        problems.append("CHUONG_APNS_KEY_FILE: not set (Apple's .p8 token-signing key)")
    else:
        try:
            key = load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(
                f"CHUONG_APNS_KEY_FILE: cannot read a PEM private key from {path} ({type(exc).__name__})"
            )
        else:
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                problems.append(f"CHUONG_APNS_KEY_FILE: {path} is not an ES256 (P-256) key as Apple issues")
    for setting, value in (
        ("CHUONG_APNS_KEY_ID", settings.apns_key_id),
        ("CHUONG_APNS_TEAM_ID", settings.apns_team_id),
    ):
        if not value:
            problems.append(f"{setting}: not set")
        elif value in EMULATOR_APNS_IDS:
            problems.append(f"{setting}: {value!r} is the emulator's")
        elif len(value) != 10 or not value.isascii() or not value.isalnum():
            problems.append(f"{setting}: Apple's ids are 10 letters and digits, not {value!r}")
    if not settings.apns_topic:
        problems.append("CHUONG_APNS_TOPIC: not set (the app's bundle id)")
    return problems


def _provider_trust(settings: Settings) -> list[str]:
    if settings.provider_ca_file:
        return [
            "CHUONG_PROVIDER_CA_FILE: must not be set (Google and Apple are verified by the system CA store)"
        ]
    return []


def _sms(settings: Settings) -> list[str]:
    url = settings.sms_gateway_url
    if not url:
        return ["CHUONG_SMS_GATEWAY_URL: not set (the emergency SMS fallback would send nothing)"]
    problems = _endpoint("CHUONG_SMS_GATEWAY_URL", url)
    if not (settings.sms_gateway_api_key or settings.sms_gateway_username):
        problems.append(
            "CHUONG_SMS_GATEWAY_API_KEY or CHUONG_SMS_GATEWAY_USERNAME: the gateway needs credentials"
        )
    return problems


# --- secrets ------------------------------------------------------------------------------


def _secrets(settings: Settings) -> list[str]:
    problems: list[str] = []
    named: list[tuple[str, str]] = [
        (_audit_key_setting(kid), key.decode()) for kid, key in settings.audit_keyring().items()
    ]
    named.append(("CHUONG_TOKEN_PEPPER", settings.token_pepper.get_secret_value()))
    try:
        keyring = settings.jwt_keyring()
    except ValueError as exc:
        problems.append(f"CHUONG_JWT_KEYS: {exc}")
    else:
        named += [(f"CHUONG_JWT_KEYS[{kid}]", secret) for kid, secret in keyring.items()]
    if settings.metrics_token is None:
        problems.append("CHUONG_METRICS_TOKEN: not set (GET /metrics would be open to anyone)")
    else:
        named.append(("CHUONG_METRICS_TOKEN", settings.metrics_token.get_secret_value()))
    for setting, value in named:
        problems += _weak_secret(setting, value)

    fernet_keys = [key.strip() for key in settings.field_encryption_keys.get_secret_value().split(",")]
    for index, key in enumerate(fernet_keys):
        problems += _weak_fernet_key(f"CHUONG_FIELD_ENCRYPTION_KEYS[{index}]", key)

    # One leaked value must not open two doors.
    seen: dict[str, str] = {}
    for setting, value in [
        *named,
        *((f"CHUONG_FIELD_ENCRYPTION_KEYS[{i}]", k) for i, k in enumerate(fernet_keys)),
    ]:
        if value and value in seen:
            problems.append(f"{setting}: the same value as {seen[value]}")
        seen.setdefault(value, setting)
    return problems


def _audit_key_setting(kid: str) -> str:
    return "CHUONG_AUDIT_HMAC_KEY" if kid == AUDIT_DEFAULT_KID else f"CHUONG_AUDIT_HMAC_KEYS[{kid}]"


def _weak_secret(setting: str, value: str) -> list[str]:
    if len(value) < MIN_SECRET_CHARS:
        return [
            f"{setting}: shorter than {MIN_SECRET_CHARS} characters (generate one with `chuong init-env`)"
        ]
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return [f"{setting}: not random (too few distinct characters)"]
    if any(word in value.lower() for word in PLACEHOLDER_WORDS):
        return [f"{setting}: a placeholder or example value"]
    return []


def _weak_fernet_key(setting: str, key: str) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (ValueError, binascii.Error):
        return [f"{setting}: not a Fernet key (url-safe base64 of 32 bytes)"]
    if len(raw) != 32:
        return [f"{setting}: not a Fernet key (url-safe base64 of 32 bytes)"]
    # 32 random bytes have ~30 distinct values; a hand-made key ("0000…", "abcabc…") has few.
    if len(set(raw)) < 16:
        return [f"{setting}: not random (a hand-made or example key)"]
    return []


# --- HTTP, logging, passwords, database ---------------------------------------------------


def _http(settings: Settings) -> list[str]:
    problems: list[str] = []
    for origin in settings.cors_origins:
        if "*" in origin:
            problems.append(f"CHUONG_CORS_ORIGINS: {origin!r} lets any site call the API with credentials")
        elif not origin.startswith("https://"):
            problems.append(f"CHUONG_CORS_ORIGINS: {origin!r} is not an https origin")
    for cidr in settings.trusted_proxies:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"CHUONG_TRUSTED_PROXIES: {cidr!r} is not an address or network")
            continue
        if network.prefixlen == 0:
            problems.append(f"CHUONG_TRUSTED_PROXIES: {cidr!r} trusts X-Forwarded-For from anyone")
    return problems


def _networks(settings: Settings) -> list[str]:
    problems: list[str] = []
    for key, cidrs in settings.allowed_networks.items():
        for cidr in cidrs:
            if ipaddress.ip_network(cidr).prefixlen == 0:  # checked CIDRs (core/config.py)
                problems.append(f"CHUONG_ALLOWED_NETWORKS: {key!r} lists {cidr}, which admits any address")
    return problems


def _open_networks(settings: Settings) -> list[str]:
    if settings.allowed_networks:
        return []
    return [
        "CHUONG_ALLOWED_NETWORKS: not set, so account administration, news approval and audit"
        " export are allowed from any address; set it unless only the agencies' networks reach"
        " the service"
    ]


def _webauthn(settings: Settings) -> list[str]:
    """Passkeys are bound to the RP ID for ever and a browser runs a ceremony only over https (or
    on localhost): a development value here would make every enrolment useless or impossible."""
    rp_id = settings.webauthn_rp_id.strip().lower()
    problems: list[str] = []
    if not rp_id or rp_id == "localhost" or _is_ip(rp_id):
        problems.append(f"CHUONG_WEBAUTHN_RP_ID: {rp_id!r} is not the console's registrable domain")
    if not settings.webauthn_origins:
        problems.append("CHUONG_WEBAUTHN_ORIGINS: empty; no browser could enrol or use a passkey")
    for origin in settings.webauthn_origins:
        parts = urlsplit(origin)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or parts.path not in ("", "/") or parts.query:
            problems.append(f"CHUONG_WEBAUTHN_ORIGINS: {origin!r} is not an https origin")
        elif host != rp_id and not host.endswith("." + rp_id):
            problems.append(f"CHUONG_WEBAUTHN_ORIGINS: {origin!r} is not inside the RP ID {rp_id!r}")
    return problems


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _logging(settings: Settings) -> list[str]:
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        return [f"CHUONG_LOG_LEVEL: {settings.log_level!r} is not a log level"]
    if level < logging.INFO:
        return [f"CHUONG_LOG_LEVEL: {settings.log_level} logs request details; use INFO or above"]
    return []


def _passwords(settings: Settings) -> list[str]:
    problems: list[str] = []
    if settings.argon2_memory_kib < MIN_ARGON2_MEMORY_KIB:
        problems.append(f"CHUONG_ARGON2_MEMORY_KIB: below {MIN_ARGON2_MEMORY_KIB} (test value?)")
    if settings.argon2_time_cost < MIN_ARGON2_TIME_COST:
        problems.append(f"CHUONG_ARGON2_TIME_COST: below {MIN_ARGON2_TIME_COST} (test value?)")
    if settings.password_min_length < 12:
        problems.append("CHUONG_PASSWORD_MIN_LENGTH: below 12 (D-26)")
    return problems


def _database(settings: Settings) -> list[str]:
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return ["CHUONG_DATABASE_URL: not a database URL"]
    problems: list[str] = []
    if url.username in (None, "", "postgres"):
        problems.append(
            "CHUONG_DATABASE_URL: connects as the superuser; use the app role (chuong_app), which may "
            "not change the audit log"
        )
    if url.password and any(word in url.password.lower() for word in PLACEHOLDER_WORDS):
        problems.append("CHUONG_DATABASE_URL: the password is a placeholder")
    return problems


# --- TLS to PostgreSQL and Redis (core/tls.py) ---------------------------------------------

# Options in a URL that would decide TLS behind the settings' back: asyncpg reads ssl/sslmode
# from the query (sslmode=require: encrypted, nothing verified), redis-py lets ssl_* query options
# win over the settings (ssl_cert_reqs=none).
_DATABASE_URL_TLS_OPTIONS = frozenset({"ssl", "sslmode", "sslrootcert", "sslcert", "sslkey"})


def _tls(settings: Settings) -> list[str]:
    problems: list[str] = []
    try:
        database_options = {name.lower() for name in make_url(settings.database_url).query}
    except ArgumentError:
        database_options = set()
    if _DATABASE_URL_TLS_OPTIONS & database_options:
        problems.append(
            "CHUONG_DATABASE_URL: TLS options in the URL; use CHUONG_DB_SSL_MODE and CHUONG_DB_SSL_ROOT_CERT"
        )
    try:
        postgres_ssl_context(settings)
    except (OSError, ssl.SSLError, ValueError) as exc:
        problems.append(
            f"CHUONG_DB_SSL_ROOT_CERT: cannot load CA certificates from {settings.db_ssl_root_cert} "
            f"({type(exc).__name__})"
        )
    redis_query = parse_qsl(urlsplit(settings.redis_url).query)
    if any(name.lower().startswith("ssl") for name, _ in redis_query):
        problems.append(
            "CHUONG_REDIS_URL: ssl options in the URL; use a rediss:// URL and CHUONG_REDIS_SSL_* settings"
        )
    if is_tls_redis_url(settings.redis_url):
        problems += _redis_tls_files(settings)
    return problems


def _redis_tls_files(settings: Settings) -> list[str]:
    context = ssl.create_default_context()
    problems: list[str] = []
    if settings.redis_ssl_ca_file:
        try:
            context.load_verify_locations(cafile=settings.redis_ssl_ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            problems.append(
                f"CHUONG_REDIS_SSL_CA_FILE: cannot load CA certificates from {settings.redis_ssl_ca_file} "
                f"({type(exc).__name__})"
            )
    if settings.redis_ssl_cert_file and settings.redis_ssl_key_file:
        try:
            context.load_cert_chain(settings.redis_ssl_cert_file, settings.redis_ssl_key_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            problems.append(
                "CHUONG_REDIS_SSL_CERT_FILE: cannot load the client certificate and "
                f"CHUONG_REDIS_SSL_KEY_FILE ({type(exc).__name__})"
            )
    return problems


def _database_hosts(url: URL) -> list[str]:
    """The network hosts a database URL connects to: its host, or each ``host=name:port`` of a
    multi-host URL (a failover pair). A ``host=/socket/dir`` is a Unix socket, which never leaves
    the machine."""
    query_hosts = url.query.get("host", ())
    entries = [query_hosts] if isinstance(query_hosts, str) else list(query_hosts)
    if entries:
        return [entry.rsplit(":", 1)[0].strip("[]") for entry in entries if not entry.startswith("/")]
    return [url.host] if url.host else []


def _unverified_connections(settings: Settings) -> list[str]:
    warnings: list[str] = []
    try:
        database = make_url(settings.database_url)
    except ArgumentError:
        database = None
    if settings.db_ssl_mode != "verify-full" and database is not None:
        for host in _database_hosts(database):
            if _is_this_machine(host):
                continue
            warnings.append(
                f"CHUONG_DATABASE_URL: {host} is reached without a verified certificate "
                f"(CHUONG_DB_SSL_MODE={settings.db_ssl_mode}); use verify-full unless the network "
                "between them is private to this deployment"
            )
    redis = urlsplit(settings.redis_url)
    if redis.scheme == "redis" and redis.hostname and not _is_this_machine(redis.hostname):
        warnings.append(
            f"CHUONG_REDIS_URL: {redis.hostname} is reached without TLS; use a rediss:// URL unless "
            "the network between them is private to this deployment"
        )
    return warnings


def _is_this_machine(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --- shared -------------------------------------------------------------------------------


def _endpoint(setting: str, url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme != "https":
        return [f"{setting}: {url!r} is not an https URL"]
    return _host(setting, parts.hostname or "")


def _host(setting: str, host: str) -> list[str]:
    name = host.strip("[]").lower().rstrip(".")
    if not name:
        return [f"{setting}: no host"]
    if name in LOCAL_HOST_NAMES or name.endswith(".localhost") or "emulator" in name:
        return [f"{setting}: {host!r} is a local or emulator host"]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return []
    if address.is_loopback or address.is_unspecified or address.is_link_local:
        return [f"{setting}: {host!r} is a local address"]
    return []


def _delivery(settings: Settings) -> list[str]:
    if settings.delivery_lease_seconds <= JOB_TIMEOUT_SECONDS:
        return [
            f"CHUONG_DELIVERY_LEASE_SECONDS: {settings.delivery_lease_seconds} is not longer than the "
            f"{JOB_TIMEOUT_SECONDS} s a send job may run (a batch still sending would be sent again)"
        ]
    return []


CHECKS: tuple[Callable[[Settings], list[str]], ...] = (
    _fcm,
    _apns,
    _provider_trust,
    _sms,
    _secrets,
    _http,
    _networks,
    _webauthn,
    _logging,
    _passwords,
    _database,
    _tls,
    _delivery,
)
