"""Where a phase's time goes: the workers sampled with py-spy (summarised in plain text, so a
profile can be read without a browser) and PostgreSQL's active statements sampled."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

PROJECT = ("notifications/", "workers/", "devices/", "inbox/", "core/db.py", "core/jobs.py")
LIBRARIES = frozenset(
    [
        "aioapns",
        "aiohttp",
        "h2",
        "hpack",
        "httpx",
        "httpcore",
        "asyncpg",
        "sqlalchemy",
        "redis",
        "arq",
        "orjson",
        "ssl",
        "firebase_admin",
        "selectors",
        "asyncio",
    ]
)


def start(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Collapsed stacks (`--format raw`), sampled without pausing the worker (`--nonblocking`)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
    argv += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def summarize(path: Path, *, top: int = 25) -> str:
    """Samples by the innermost project function on the stack (what our code asked for, with
    the libraries it called), else by the library running a loop callback (e.g. a protocol's
    data_received); and the functions with the most samples of their own."""
    by_caller: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse(frame) for frame in stack.split(";")]
        total += count
        own[":".join(frames[-1])] += count
        by_caller[_caller(frames)] += count
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples (busy time only)", "  by caller:"]
    lines += [f"  {100 * n / total:6.1f}%  {name}" for name, n in by_caller.most_common(top)]
    lines.append("  self time:")
    lines += [f"  {100 * n / total:6.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def _parse(frame: str) -> tuple[str, str]:
    # py-spy frames look like "send (notifications/providers/fcm_http1.py:150)".
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return file, name


def _caller(frames: list[tuple[str, str]]) -> str:
    for file, name in reversed(frames):
        if file.startswith(PROJECT):
            return f"{file}:{name}"
    for file, _ in reversed(frames):
        library = file.split("/", 1)[0].removesuffix(".py")
        if library in LIBRARIES:
            return f"(loop callback) {library}"
    return "(other)"


class QuerySampler:
    """Which statements PostgreSQL is busy with: `pg_stat_activity` polled every 20 ms (a poor
    man's pg_stat_statements, which needs a server restart to load)."""

    def __init__(self) -> None:
        self.samples: Counter[str] = Counter()
        self.polls = 0

    async def run(self, conn: Any, database: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT query, wait_event_type FROM pg_stat_activity WHERE datname = $1 AND state = 'active'"
                " AND pid <> pg_backend_pid()",
                database,
            )
            self.polls += 1
            for row in rows:
                # "Lock": waiting for another transaction (e.g. on the notification row).
                waiting = row["wait_event_type"] or "running"
                self.samples[f"[{waiting}] " + " ".join(row["query"].split())[:130]] += 1
            await asyncio.sleep(0.02)

    def summary(self, *, top: int = 10) -> str:
        lines = [f"PostgreSQL: active statements in {self.polls} polls (share of polls)"]
        lines += [
            f"  {100 * n / max(self.polls, 1):6.1f}%  {query}" for query, n in self.samples.most_common(top)
        ]
        return "\n".join(lines)


@asynccontextmanager
async def watching(
    directory: Path | None, phase: str, workers: list[int], pg: str, superuser: str, database: str
) -> AsyncIterator[None]:
    """py-spy on every worker and the statement sampler, for one phase; nothing without a
    directory. Prints the statement summary at the end (the py-spy files are summarised later)."""
    if directory is None:
        yield
        return
    import asyncpg

    spies = [start(pid, directory / f"{phase}-{pid}.txt") for pid in workers]
    host, port = pg.split(":")
    conn = await asyncpg.connect(host=host, port=int(port), user=superuser, database="postgres")
    sampler, done = QuerySampler(), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(conn, database, done))
    try:
        yield
    finally:
        done.set()
        await sampling
        await conn.close()
        for spy in spies:
            stop(spy)
        print(f"{phase}: {sampler.summary()}", flush=True)
