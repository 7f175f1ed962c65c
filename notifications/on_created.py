"""What else happens, in the same transaction, when a notification is created.

The in-app inbox does something (inbox/fanout.py ``schedule``): it records and queues the
per-recipient rows of a targeted notification and announces a broadcast to connected readers,
both after commit. inbox depends on notifications, never the reverse (an import-linter contract),
so ``service.create_prepared`` cannot call it by name: each composition root registers it with
``set_on_created`` at start-up, as it registers the enqueuer (core/jobs.py): the served app's
factory (cli/asgi.py), the worker's start-up (workers/settings.py), the tests (tests/conftest.py) and the
benchmark (bench/delivery.py).

Forgetting it is not silent: creating a notification in a process that registered nothing raises
``OnCreatedNotWired``, so its transaction rolls back instead of committing a notification whose
inbox rows would never be written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from notifications.models import Notification


class OnCreated(Protocol):
    """Runs inside the creating transaction, right after the notification rows are written (one
    call for all the notifications of ``service.create_prepared_many``, so that the hook too can
    write set-based); whatever it writes or defers commits (or rolls back) with them."""

    async def __call__(self, session: AsyncSession, notifications: Sequence[Notification], /) -> None: ...


class OnCreatedNotWired(RuntimeError):
    """A process created a notification without registering what follows its creation."""


_on_created: OnCreated | None = None


def set_on_created(hook: OnCreated | None) -> None:
    """Registered once at start-up by the process's composition root."""
    global _on_created
    _on_created = hook


def registered() -> OnCreated | None:
    return _on_created


async def created(session: AsyncSession, notifications: Sequence[Notification]) -> None:
    """Called by ``service.create_prepared_many`` with the notifications it wrote."""
    if _on_created is None:
        raise OnCreatedNotWired(
            "No on-created hook is registered: the process's start-up must call "
            "notifications.on_created.set_on_created(inbox.fanout.schedule)"
        )
    await _on_created(session, notifications)
