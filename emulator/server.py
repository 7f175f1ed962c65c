"""Starting and stopping the emulator, in-process (`Emulator`) or as its own process (`main`).

    python -m emulator --host 127.0.0.1 --fcm-port 8441 --apns-port 8442 --control-port 8440 \
        --ca-path /tmp/chuong-emulator/ca.pem

Ports of 0 pick free ports. At start-up it writes the CA certificate and, next to it (or in
`--credentials-dir`), an FCM service-account file and an APNs .p8 key for the app to use. Once
listening, one line goes to stdout:
    EMULATOR READY {"fcm_url": ..., "apns_host": ..., "apns_port": ..., "control_url": ..., "ca_path": ...,
                    "fcm_credentials_file": ..., "apns_key_file": ..., ...}
so a parent process (tests, benchmarks) can read where everything is
(`emulator.app_settings.app_settings(addresses)` turns it into the app's settings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from emulator.apns import ApnsHandler
from emulator.app_settings import app_settings
from emulator.control import ControlHandler
from emulator.credentials import write_credentials
from emulator.faults import FaultInjector, FaultSettings
from emulator.fcm import FcmHandler
from emulator.hpack_cache import install_hpack_huffman_cache
from emulator.listener import Listener
from emulator.records import MessageLog
from emulator.sms import SmsSink
from emulator.tls import EmulatorTls

logger = logging.getLogger(__name__)

READY_PREFIX = "EMULATOR READY "
DEFAULT_CA_PATH = Path(tempfile.gettempdir()) / "chuong-emulator" / "ca.pem"


@dataclass(slots=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    fcm_port: int = 0
    apns_port: int = 0
    control_port: int = 0
    ca_path: Path = DEFAULT_CA_PATH
    record_messages: bool = True
    max_records: int = 1_000_000
    # Payload bytes are the bulk of a record; only the newest this many keep theirs.
    max_payloads: int = 100_000
    retry_after_s: int = 1
    slow_latency_ms: float = 500.0
    seed: int | None = None
    # Extra names for the server certificate, e.g. a docker-compose service name that
    # clients in other containers dial ("emulator" is always included).
    cert_hosts: tuple[str, ...] = ()
    # Where the service-account file and the .p8 key go; None: the CA's directory.
    credentials_dir: Path | None = None
    # The name clients dial, written into the addresses and the service account's token_uri
    # (docker-compose: the service name, since a wildcard bind is no address for other containers).
    advertise_host: str | None = None


class Emulator:
    """FCM (TLS, h2 + http/1.1), APNs (TLS, h2) and control (plain HTTP) listeners.

    `faults` and `log` are the same objects the control API changes, so in-process tests
    may use either.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        advertised = (self.config.advertise_host,) if self.config.advertise_host else ()
        self.tls = EmulatorTls(extra_hosts=(self.config.host, *advertised, *self.config.cert_hosts))
        self.faults = FaultInjector(
            FaultSettings(
                retry_after_s=self.config.retry_after_s, slow_latency_ms=self.config.slow_latency_ms
            ),
            seed=self.config.seed,
        )
        self.log = MessageLog(
            max_records=self.config.max_records,
            max_payloads=self.config.max_payloads,
            record=self.config.record_messages,
        )
        stats = self.log.stats
        self._fcm = Listener(
            name="fcm",
            handler=FcmHandler(faults=self.faults, log=self.log),
            stats=stats,
            ssl_context=self.tls.server_context(["h2", "http/1.1"]),
        )
        self._apns = Listener(
            name="apns",
            handler=ApnsHandler(faults=self.faults, log=self.log),
            stats=stats,
            ssl_context=self.tls.server_context(["h2"]),
        )
        self.sms = SmsSink()
        self.control = ControlHandler(
            faults=self.faults,
            log=self.log,
            ca_pem=self.tls.ca_pem,
            drop_connections=self.drop_connections,
            reset_connections=self.reset_connections,
            sms=self.sms,
        )
        self._control = Listener(name="control", handler=self.control, stats=stats, ssl_context=None)
        self.fcm_port = self.apns_port = self.control_port = 0
        self.ca_path = self.config.ca_path
        self.credentials_dir = self.config.credentials_dir or self.ca_path.parent
        self.fcm_credentials_file: Path | None = None
        self.apns_key_file: Path | None = None

    async def start(self) -> None:
        install_hpack_huffman_cache()
        host = self.config.host
        self.tls.write_ca(self.ca_path)
        self.fcm_port = await self._fcm.start(host, self.config.fcm_port)
        self.apns_port = await self._apns.start(host, self.config.apns_port)
        self.control_port = await self._control.start(host, self.config.control_port)
        # After the control listener: the service account's token_uri names its port.
        self.fcm_credentials_file, self.apns_key_file = write_credentials(
            self.credentials_dir, token_uri=self.token_uri
        )
        logger.info("provider emulator listening: %s", self.addresses())

    async def stop(self) -> None:
        await asyncio.gather(*(listener.stop() for listener in (self._fcm, self._apns, self._control)))

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def reset(self) -> None:
        """Fault defaults, empty record, zero counts: what `POST /reset` does."""
        self.faults.reset()
        self.log.clear()
        self.sms.clear()

    def drop_connections(self) -> None:
        """Graceful: GOAWAY (HTTP/2) or close after the owed replies (HTTP/1.1)."""
        self._fcm.drop_connections()
        self._apns.drop_connections()

    def reset_connections(self) -> None:
        """Abrupt: a TCP RST on every provider connection, requests in flight unanswered."""
        self._fcm.reset_connections()
        self._apns.reset_connections()

    @property
    def client_host(self) -> str:
        """The address clients should dial (a wildcard bind is reached via loopback)."""
        if self.config.advertise_host:
            return self.config.advertise_host
        host = self.config.host
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104

    @property
    def fcm_url(self) -> str:
        return f"https://{_url_host(self.client_host)}:{self.fcm_port}"

    @property
    def control_url(self) -> str:
        return f"http://{_url_host(self.client_host)}:{self.control_port}"

    @property
    def token_uri(self) -> str:
        """OAuth2 token endpoint over plain HTTP (google-auth then needs no CA set up)."""
        return f"{self.control_url}/token"

    def addresses(self) -> dict[str, Any]:
        return {
            "fcm_url": self.fcm_url,
            "apns_host": self.client_host,
            "apns_port": self.apns_port,
            "control_url": self.control_url,
            "token_uri": self.token_uri,
            "sms_url": f"{self.control_url}/sms/send",
            "ca_path": str(self.ca_path),
            "fcm_credentials_file": str(self.fcm_credentials_file),
            "apns_key_file": str(self.apns_key_file),
        }

    def app_settings(self) -> dict[str, Any]:
        """Chuông's settings (field names of core.config.Settings) that send here."""
        return app_settings(self.addresses())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_args(argv: Sequence[str] | None) -> EmulatorConfig:
    parser = argparse.ArgumentParser(
        prog="python -m emulator", description="Local FCM/APNs provider emulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--fcm-port", type=int, default=8441, help="FCM HTTP v1 over TLS, h2 and http/1.1")
    parser.add_argument("--apns-port", type=int, default=8442, help="APNs provider API over TLS, h2")
    parser.add_argument("--control-port", type=int, default=8440, help="control API, plain HTTP/1.1")
    parser.add_argument(
        "--cert-host",
        action="append",
        default=[],
        help="extra DNS name or IP for the server certificate (repeatable)",
    )
    parser.add_argument(
        "--advertise-host",
        default=None,
        help="the name other hosts dial (e.g. the compose service name); default: the bind address",
    )
    parser.add_argument(
        "--ca-path", type=Path, default=DEFAULT_CA_PATH, help="where to write the CA cert PEM"
    )
    parser.add_argument(
        "--credentials-dir",
        type=Path,
        default=None,
        help="where to write the FCM service-account file and the APNs .p8 key (default: the CA's directory)",
    )
    parser.add_argument("--max-records", type=int, default=1_000_000, help="messages kept in the record")
    parser.add_argument("--max-payloads", type=int, default=100_000, help="newest records keeping payloads")
    parser.add_argument("--no-record", action="store_true", help="keep counts only, no per-message record")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on 429/503")
    parser.add_argument("--slow-latency-ms", type=float, default=500.0, help="delay for slow- tokens")
    parser.add_argument("--seed", type=int, default=None, help="seed for the error-rate fault")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return EmulatorConfig(
        host=args.host,
        fcm_port=args.fcm_port,
        apns_port=args.apns_port,
        control_port=args.control_port,
        ca_path=args.ca_path,
        record_messages=not args.no_record,
        max_records=args.max_records,
        max_payloads=args.max_payloads,
        retry_after_s=args.retry_after,
        slow_latency_ms=args.slow_latency_ms,
        seed=args.seed,
        cert_hosts=tuple(args.cert_host),
        credentials_dir=args.credentials_dir,
        advertise_host=args.advertise_host,
    )


async def run(config: EmulatorConfig) -> None:
    """Serve until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with Emulator(config) as emulator:
        sys.stdout.write(READY_PREFIX + orjson.dumps(emulator.addresses()).decode() + "\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        import uvloop  # optional speed-up; comes with uvicorn[standard]
    except ImportError:
        asyncio.run(run(config))
    else:
        uvloop.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
