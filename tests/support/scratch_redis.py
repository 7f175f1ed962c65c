"""A throw-away redis-server on a free port, for tests and the soak (bench/soak.py) that stop and
start Redis: the machine's shared Redis is never touched. No persistence: it comes back empty, as
a Redis that lost its host would."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.support.scratch_postgres import free_port


class ScratchRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="chuong-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",  # noqa: S607
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


async def answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=0.3)
    try:
        return bool(await client.ping())
    except (OSError, RedisError):  # refused, or still loading
        return False
    finally:
        await client.aclose()
