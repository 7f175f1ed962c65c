"""Each test run claims a Redis logical database of its own, so that two runs on one machine (a
developer's and CI's, or the workers of one run under pytest-xdist) never flush each other's keys.

A lease names its holder (host and process id). A run that was killed never releases its lease
(no atexit on SIGKILL or a plain SIGTERM): when every database is taken, leases held by processes
of this host that no longer exist are taken over instead of waiting hours for them to expire.
"""

from __future__ import annotations

import atexit
import os
import socket
import uuid
from typing import cast

import redis

HOST = os.environ.get("CHUONG_TEST_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("CHUONG_TEST_REDIS_PORT", "6379"))
CANDIDATES = range(2, 16)  # 0 is for development, 1 is left alone
LEASE_SECONDS = 4 * 3600

# Compare-and-swap: replace a lease only if it still holds the value we judged stale.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def _is_stale(value: bytes | None) -> bool:
    """A lease of a process of this host that has exited. Leases without a holder (older runs) or
    of other hosts are left to expire."""
    if value is None:
        return False
    parts = value.decode(errors="replace").split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return False


def claim_redis_database() -> str:
    control = redis.Redis(host=HOST, port=PORT, db=0)
    holder = _holder()
    for index in CANDIDATES:
        key = f"chuong:test-db:{index}"
        if control.set(key, holder, nx=True, ex=LEASE_SECONDS):
            return _claimed(key, holder, index)
    take_over = control.register_script(_TAKE_OVER)
    for index in CANDIDATES:
        key = f"chuong:test-db:{index}"
        current = cast("bytes | None", control.get(key))
        if (
            current is not None
            and _is_stale(current)
            and take_over(keys=[key], args=[current, holder, LEASE_SECONDS])
        ):
            return _claimed(key, holder, index)
    raise RuntimeError("no free Redis database for tests (all leases taken: delete chuong:test-db:* keys)")


def _claimed(key: str, holder: str, index: int) -> str:
    atexit.register(_release, key, holder)
    return f"redis://{HOST}:{PORT}/{index}"


def _release(key: str, holder: str) -> None:
    control = redis.Redis(host=HOST, port=PORT, db=0)
    try:
        if control.get(key) == holder.encode():
            control.delete(key)
    except redis.RedisError:
        pass  # the lease expires on its own
