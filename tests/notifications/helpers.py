from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid

from arq.connections import RedisSettings
from arq.worker import Worker
from redis.asyncio import Redis
from sqlalchemy import select

from auth.roles import Role
from core.after_commit import committing
from core.db import transaction
from core.jobs import BULK_QUEUE, HIGH_QUEUE
from notifications import service as notification_service
from notifications.models import Delivery, Notification
from notifications.policy import ApprovedRelease
from notifications.schemas import NotificationCreate
from tests.support.factories import make_account, make_unit, sign_in
from workers.settings import WorkerSettings


async def central_sender(client) -> dict[str, str]:
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    return await sign_in(client, admin)


def notification_body(**overrides) -> dict:
    body = {
        "app": "portal",
        "kind": "breaking_news",
        "priority": "high",
        "title": {"vi": "Tin đặc biệt quan trọng", "en": "Breaking news"},
        "body": {"vi": "Nội dung bản tin", "en": "Story body"},
        "data": {"article_id": "a-1"},
        "deep_link": "chuong-portal://article/a-1",
        "collapse_key": "a-1",
        "audience": {"all": True},
    }
    body.update(overrides)
    return body


async def broadcast(client, headers: dict[str, str], **overrides) -> str:
    """A push to every device (``notification_body``'s audience), released as the news workflow
    releases one once a second publisher approved it: ``POST /v1/notifications`` refuses
    broadcasts to anyone alone (four eyes, notifications/policy.py). ``headers``' account is the
    creator, so what it may read is what it could read of its own push."""
    return await release_approved(client, headers, notification_body(**overrides))


async def release_approved(client, headers: dict[str, str], request_body: dict) -> str:
    """Any ``POST /v1/notifications`` body, released through the approved path."""
    me = (await client.get("/v1/auth/me", headers=headers)).json()
    body = NotificationCreate.model_validate(request_body)
    approver = uuid.UUID(me["id"])
    async with committing() as session:
        notification = await notification_service.create_approved(
            session,
            body=body,
            created_by_id=approver,
            unit_id=uuid.UUID(me["unit_id"]),
            approved=ApprovedRelease(workflow="test", object_id=uuid.uuid4(), approved_by=approver),
        )
    return str(notification.id)


async def run_workers(ctx: dict) -> None:
    """Drain both queues with real arq workers (as `chuong worker` runs, minus crons).

    A burst worker would also wait, in real time, for retries deferred to the future; this one
    stops once nothing is due and nothing runs. Tests drive retries with the service clock and
    call the job functions, which is how the reconciler recovers lost jobs too."""
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    redis = Redis.from_url(os.environ["CHUONG_REDIS_URL"])
    try:
        for queue in (HIGH_QUEUE, BULK_QUEUE, HIGH_QUEUE):
            worker = Worker(
                functions=WorkerSettings.functions,
                redis_settings=settings,
                queue_name=queue,
                poll_delay=0.01,
                handle_signals=False,
                ctx=dict(ctx),
                keep_result=60,
                max_jobs=20,
            )
            running = asyncio.create_task(worker.main())
            idle = 0
            while idle < 3:
                await asyncio.sleep(0.05)
                due = await redis.zcount(queue, "-inf", int(time.time() * 1000))
                idle = idle + 1 if due == 0 and not worker.tasks else 0
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await worker.close()
    finally:
        await redis.aclose()


async def load(notification_id: str | uuid.UUID) -> tuple[Notification, list[Delivery]]:
    async with transaction() as session:
        notification = await session.get(Notification, uuid.UUID(str(notification_id)))
        deliveries = (
            (
                await session.execute(
                    select(Delivery).where(Delivery.notification_id == uuid.UUID(str(notification_id)))
                )
            )
            .scalars()
            .all()
        )
        assert notification is not None
        return notification, list(deliveries)
