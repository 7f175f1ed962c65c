"""Each test run claims a Redis logical database of its own, so that two runs on one machine (a
developer's and CI's) never flush each other's keys."""

from __future__ import annotations

import atexit
import os
import uuid

import redis

HOST = os.environ.get("CHUONG_TEST_REDIS_HOST", "127.0.0.1")
PORT = int(os.environ.get("CHUONG_TEST_REDIS_PORT", "6379"))
CANDIDATES = range(2, 16)  # 0 is for development, 1 is left alone
LEASE_SECONDS = 4 * 3600


def claim_redis_database() -> str:
    control = redis.Redis(host=HOST, port=PORT, db=0)
    run_id = uuid.uuid4().hex
    for index in CANDIDATES:
        key = f"chuong:test-db:{index}"
        if control.set(key, run_id, nx=True, ex=LEASE_SECONDS):
            atexit.register(_release, key, run_id)
            return f"redis://{HOST}:{PORT}/{index}"
    raise RuntimeError("no free Redis database for tests (all leases taken: delete chuong:test-db:* keys)")


def _release(key: str, run_id: str) -> None:
    control = redis.Redis(host=HOST, port=PORT, db=0)
    try:
        if control.get(key) == run_id.encode():
            control.delete(key)
    except redis.RedisError:
        pass  # the lease expires on its own
