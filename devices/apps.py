"""The apps devices register for and notifications go to (issue 19 item 6), as data.

Every registration, inbox read and notification names its app, so the rows are kept in process
(``known``): read once, then served from memory for ``CACHE_SECONDS``. A change made here clears
this process's copy at once (and again after its commit); other processes (API workers, send
workers) see it within ``CACHE_SECONDS``. The copy is per database engine, so a process pointed
at another database (the tests do this per test) never serves the previous one's apps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core import clock
from core.after_commit import call_after_commit
from core.errors import Conflict, NotFound, Unprocessable
from devices.app_schemas import AppCreate, AppUpdate
from devices.models import App

CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AppInfo:
    """What the hot paths need of an app row (immutable: shared by every request)."""

    code: str
    name: str
    enabled: bool
    platforms: frozenset[str]
    fcm_project_id: str | None
    apns_topic: str | None
    languages: frozenset[str]
    anonymous_devices: bool

    @classmethod
    def of(cls, app: App) -> AppInfo:
        return cls(
            code=app.code,
            name=app.name,
            enabled=app.enabled,
            platforms=frozenset(app.platforms),
            fcm_project_id=app.fcm_project_id,
            apns_topic=app.apns_topic,
            languages=frozenset(app.languages),
            anonymous_devices=app.anonymous_devices,
        )


@dataclass
class _Cached:
    database: object  # the Engine the rows came from (compared by identity: no URL rendering)
    loaded_at: float  # the service clock's (core.clock: tests move it), in seconds
    apps: Mapping[str, AppInfo]


_cached: _Cached | None = None


def invalidate() -> None:
    global _cached
    _cached = None


async def _invalidate_after_commit() -> None:
    invalidate()


def _database_of(session: AsyncSession) -> object:
    return session.get_bind().engine


async def known(session: AsyncSession) -> Mapping[str, AppInfo]:
    """Every app by code, enabled or not: from memory, or one query every ``CACHE_SECONDS``."""
    global _cached
    database = _database_of(session)
    now = clock.utcnow().timestamp()
    cached = _cached
    # A clock set back is no reason to keep a copy: a negative age reloads.
    if cached is not None and cached.database is database and 0 <= now - cached.loaded_at < CACHE_SECONDS:
        return cached.apps
    rows = (await session.execute(select(App))).scalars()
    apps = {row.code: AppInfo.of(row) for row in rows}
    _cached = _Cached(database=database, loaded_at=now, apps=apps)
    return apps


async def find(session: AsyncSession, code: str) -> AppInfo | None:
    return (await known(session)).get(code)


async def require(session: AsyncSession, code: str, *, enabled: bool = True) -> AppInfo:
    """The app ``code`` names: 422 ``unknown_app`` if there is none, and, with ``enabled``,
    ``app_disabled`` if it takes nothing new."""
    app = await find(session, code)
    if app is None:
        raise Unprocessable(f"Unknown app {code!r}", code="unknown_app", details=[{"app": code}])
    if enabled and not app.enabled:
        raise Unprocessable(f"The app {code!r} is disabled", code="app_disabled", details=[{"app": code}])
    return app


# ---- administration (system admins: ``apps:manage``) ------------------------------------------


async def list_all(session: AsyncSession) -> list[App]:
    return list((await session.execute(select(App).order_by(App.code))).scalars())


async def create(session: AsyncSession, *, body: AppCreate) -> App:
    values = body.model_dump()
    inserted = (
        await session.execute(
            insert(App).values(**values).on_conflict_do_nothing(index_elements=["code"]).returning(App)
        )
    ).scalar_one_or_none()
    if inserted is None:
        raise Conflict("An app with this code exists", code="app_exists", details=[{"app": body.code}])
    audit.record(session, action="app.created", object_type="app", object_id=body.code, details=values)
    _changed(session)
    return inserted


async def update(session: AsyncSession, *, code: str, body: AppUpdate) -> App:
    """Change what the body sets. Disabling stops new registrations and notifications for the
    app; its devices, inboxes and notifications under way are left as they are."""
    app = (await session.execute(select(App).where(App.code == code).with_for_update())).scalar_one_or_none()
    if app is None:
        raise NotFound("App not found", code="app_not_found")
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "enabled", "platforms", "languages", "anonymous_devices"):
        if name in changes and changes[name] is None:
            raise Unprocessable(f"{name} cannot be null", code="validation_error", details=[{"field": name}])
    before = {name: getattr(app, name) for name in changes}
    for name, value in changes.items():
        setattr(app, name, value)
    changed = {name: value for name, value in changes.items() if before[name] != value}
    await session.flush()
    await session.refresh(app)
    if changed:
        action = "app.updated"
        if set(changed) == {"enabled"}:
            action = "app.enabled" if changed["enabled"] else "app.disabled"
        audit.record(
            session,
            action=action,
            object_type="app",
            object_id=code,
            details={
                "changed": {name: {"from": before[name], "to": value} for name, value in changed.items()}
            },
        )
        _changed(session)
    return app


def _changed(session: AsyncSession) -> None:
    invalidate()
    call_after_commit(session, _invalidate_after_commit)
