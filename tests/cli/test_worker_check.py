"""`chuong worker --check`: the containers' healthcheck of a worker (docker-compose.yml) reads arq's
own health record of the queue: failing with no worker alive, passing while one runs."""

import os
import subprocess
import sys
import time


def check(queue: str, *options: str) -> int:
    return subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "cli", "worker", "--queue", queue, *options, "--check"],
        capture_output=True, timeout=60, check=False,
    ).returncode  # fmt: skip


def test_the_check_fails_without_a_worker_and_passes_while_one_runs(database_url, redis):
    assert check("high") == 1

    env = {**os.environ, "CHUONG_DATABASE_URL": database_url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--queue", "high"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while check("high") != 0:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "no health record within a minute"
            time.sleep(0.5)
        assert check("bulk") == 1  # per queue: the bulk queue has no worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_urgent_workers_check_reads_its_own_record(database_url, redis):
    """An urgent worker (`--urgent-only`) keeps a health record of its own, which the ordinary
    workers read as its sign of life (workers/roles.py): an ordinary worker does not pass its check."""
    env = {**os.environ, "CHUONG_DATABASE_URL": database_url}
    workers = [
        subprocess.Popen(  # noqa: S603 (our own CLI)
            [sys.executable, "-m", "cli", "worker", "--queue", "high", *options],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for options in ([], ["--urgent-only"])
    ]
    try:
        deadline = time.monotonic() + 60
        while check("high", "--urgent-only") != 0:
            assert all(worker.poll() is None for worker in workers), "a worker exited"
            assert time.monotonic() < deadline, "no health record within a minute"
            time.sleep(0.5)
        assert check("high") == 0
        workers[1].terminate()
        workers[1].wait(timeout=30)
        # Removed at a clean stop (and gone 2 s after a kill): the others take its work again.
        assert check("high", "--urgent-only") == 1
        assert check("high") == 0
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
