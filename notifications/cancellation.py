"""A cancel reaches the workers between one provider request and the next.

PostgreSQL is the record: a cancelled notification's batches cannot be claimed, and a send job
reads the status again right before each further chunk. That alone would let the chunks already
started run to their end: of the two chunks under way (250 pushes) only ``fcm_max_in_flight`` may
be on the wire, the rest wait for a free slot or a pacing permit, and those are requests that have
not started. So,
once a cancel has committed (core/after_commit.py, before the API answers):

1. it publishes the notification id on ``CHANNEL``;
2. every worker process listens there from before its first claim; on the message it marks the
   notification stopped, so that its providers start no further request for it (``stopped()``,
   a dict look-up before each request: no query per message), and acknowledges every batch of it
   that the process holds;
3. the cancel waits until each batch that was under lease when it committed is acknowledged
   (``ACK_TIMEOUT_SECONDS`` at most), and only then answers.

When the cancel has answered, only requests already on the wire can still reach the provider.
If Redis is down, or a worker does not answer in time, the cancel answers anyway (logged) and
that worker's batch stops at its next chunk through the status check.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from core.logging import get_logger
from core.redis import get_redis, new_redis_client

log = get_logger(__name__)

CHANNEL = "chuong:notifications:cancelled"
ACK_TIMEOUT_SECONDS = 2.0
_ACK_KEEP_SECONDS = 60
# Longer than a batch lease (90 s): a claim that was running when the message came still finds
# the notification stopped when it registers its batch.
_REMEMBER_SECONDS = 600.0

_stopped: dict[str, float] = {}  # notification id → when this process heard of its cancel
_held: dict[str, set[int]] = {}  # notification id → batches this process holds right now
_tasks: set[asyncio.Task[Any]] = set()
# Other channels heard on the same subscription (notifications/first_pages.py): channel → handler,
# each message handled in a task of its own so that a cancel never waits behind one.
_also: dict[str, Callable[[str], Coroutine[Any, Any, None]]] = {}


def also_listen(channel: str, handler: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """Hear ``channel`` on this process's subscription too; registered before it starts."""
    _also[channel] = handler


def hearing(channel: str) -> bool:
    return channel in _also


def stop_hearing(channel: str) -> None:
    """Stop handing ``channel``'s messages over (a worker's shutdown): a handler left behind
    would act for a process that no longer sends, with its closed providers."""
    _also.pop(channel, None)


def stopped(notification_id: str) -> bool:
    """Was this notification cancelled? Providers ask before starting each request."""
    return notification_id in _stopped


def _ack_key(notification_id: str) -> str:
    return f"chuong:notifications:cancel-acks:{notification_id}"


# --- the worker's side --------------------------------------------------------------------------


class _Listener:
    """One subscription per process (per event loop), reconnecting after Redis errors."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready = asyncio.Event()  # subscribed: a cancel published from now on is heard
        self.tried = asyncio.Event()  # the first attempt ended, well or not
        # In a context of its own: it serves the whole process, not the job that happened to
        # start it, whose id (bound for the job's log lines, workers/context.py) it would keep.
        self.task = loop.create_task(
            self._run(), name="chuong-cancel-listener", context=contextvars.Context()
        )

    async def _run(self) -> None:
        while True:
            client = new_redis_client(
                decode_responses=True,
                socket_connect_timeout=0.5,
                health_check_interval=15,  # a PING on a quiet connection notices a dead one
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL, *_also)
                    # The server's confirmation: only from here on is a publish delivered to us.
                    for _ in range(1 + len(_also)):
                        if await pubsub.get_message(timeout=1.0) is None:
                            raise ConnectionError("no confirmation of the subscription")
                    self.ready.set()
                    self.tried.set()
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                        if message is None or message["type"] != "message":
                            continue
                        channel = str(message["channel"])
                        if channel == CHANNEL:
                            await _heard(str(message["data"]))
                        elif (handler := _also.get(channel)) is not None:
                            _spawn(handler(str(message["data"])))
                        # else: a channel whose handler was removed since (stop_hearing)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: the status check per chunk still stops batches
                if self.ready.is_set() or not self.tried.is_set():
                    log.warning("cancel_listener_down", error=type(exc).__name__)
                self.ready.clear()
                self.tried.set()
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    def close(self) -> None:
        self.task.cancel()


_listener: _Listener | None = None


async def listening() -> bool:
    """Make sure this process hears cancels before it claims a batch. False while it cannot
    (Redis down): the status check before each chunk is then the only stop."""
    global _listener
    loop = asyncio.get_running_loop()
    if _listener is None or _listener.loop is not loop or _listener.task.done():
        _listener = _Listener(loop)
    if not _listener.tried.is_set():
        await _listener.tried.wait()  # the first connection only; later a lost one costs nothing
    return _listener.ready.is_set()


async def close() -> None:
    global _listener
    if _listener is not None:
        _listener.close()
        _listener = None


def hold(notification_id: str, batch_id: int) -> None:
    """This process leased the batch: a cancel must be acknowledged for it. Registered with no
    await after the claim, so a cancel heard while the claim ran is acknowledged here."""
    _held.setdefault(notification_id, set()).add(batch_id)
    if notification_id in _stopped:
        _spawn(_acknowledge(notification_id, [batch_id]))


def release(notification_id: str, batch_id: int) -> None:
    held = _held.get(notification_id)
    if held is not None:
        held.discard(batch_id)
        if not held:
            del _held[notification_id]


async def _heard(notification_id: str) -> None:
    now = time.monotonic()
    if notification_id not in _stopped:
        for old in [nid for nid, seen in _stopped.items() if seen < now - _REMEMBER_SECONDS]:
            del _stopped[old]
    _stopped[notification_id] = now  # from here on no request of it starts in this process
    held = _held.get(notification_id)
    if held:
        await _acknowledge(notification_id, sorted(held))


async def _acknowledge(notification_id: str, batch_ids: Sequence[int]) -> None:
    try:
        async with get_redis().pipeline(transaction=False) as pipe:
            pipe.rpush(_ack_key(notification_id), *batch_ids)
            pipe.expire(_ack_key(notification_id), _ACK_KEEP_SECONDS)
            await pipe.execute()
    except Exception as exc:  # the cancel then waits out its timeout; nothing is sent meanwhile
        log.warning("cancel_ack_failed", notification_id=notification_id, error=type(exc).__name__)


def _spawn(coroutine: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


# --- the cancel's side --------------------------------------------------------------------------


async def announce(
    notification_id: uuid.UUID, held_batches: Sequence[int], *, wait_seconds: float = ACK_TIMEOUT_SECONDS
) -> bool:
    """After the cancel committed: tell every worker, and wait until the ones holding
    ``held_batches`` (the batches under lease at the cancel) have stopped. False when some did
    not answer in time or Redis failed; the status check per chunk stops those."""
    nid = str(notification_id)
    waiting = set(held_batches)
    redis = get_redis()
    try:
        await redis.publish(CHANNEL, nid)
        deadline = time.monotonic() + wait_seconds
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Short blocking pops (fractional seconds, Redis ≥ 6): the shared client's socket
            # timeout is 0.5 s.
            popped = await redis.execute_command(  # type: ignore[no-untyped-call]  # blpop's hint says int
                "BLPOP", _ack_key(nid), f"{min(left, 0.25):.3f}"
            )
            if popped:
                waiting.discard(int(popped[1]))
    except Exception as exc:
        log.warning("cancel_announce_failed", notification_id=nid, error=type(exc).__name__)
        return False
    if waiting:
        log.warning("cancel_not_acknowledged", notification_id=nid, batches=sorted(waiting))
        return False
    return True
