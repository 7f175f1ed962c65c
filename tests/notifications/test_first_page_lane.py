"""The first-page lane (notifications/first_page_lane.py, issue 16 item 7): a new
notification's first page goes out beside the batch a worker is starting, instead of waiting
until that batch has started its last chunk; the lane holds one batch at a time and claims
nothing but first pages, so a killed worker can re-send one first page more at most.

Checked on the order of the emulator's requests, not on times: the broadcast's tokens answer
after SLOW_MS, so the batch holding the send slot starts its third chunk only once its first was
answered."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from core import clock
from core.db import transaction
from core.jobs import BULK_QUEUE, FIRST_PAGE_PREFIX, HIGH_QUEUE
from inbox.badges import unread_badges
from notifications import cancellation, delivery, fanout, first_page_lane, first_pages, outbox, urgent_role
from notifications.models import DeliveryBatch
from notifications.service import sharing_queue
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load, notification_body, release_approved
from workers.delivery_jobs import fan_out, send_batch

SLOW_MS = 1500.0
PAGE = 4  # four chunks of one: the third starts once the first has been answered


async def _pages(nid: str) -> list[DeliveryBatch]:
    async with transaction() as session:
        query = select(DeliveryBatch).where(DeliveryBatch.notification_id == uuid.UUID(nid))
        return list((await session.execute(query.order_by(DeliveryBatch.low_id))).scalars())


async def _leased(nid: str) -> bool:
    return any(page.leased_until is not None for page in await _pages(nid))


async def _targeted(client, headers, worker_ctx, tokens: list[str]) -> str:
    devices = await register_devices([("fcm", token, "vi") for token in tokens])
    body = notification_body(audience={"devices": [str(d) for d in devices]})
    nid = await release_approved(client, headers, body)
    await fan_out(worker_ctx, nid)
    return nid


def _first_page_job(worker_ctx: dict, nid: str) -> dict:
    """The context arq hands the job queued for a first page (its id says what it is)."""
    return {**worker_ctx, "job_id": f"{FIRST_PAGE_PREFIX}{nid}:test"}


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(fanout, "PAGE_SIZE", PAGE)


async def test_a_first_page_goes_out_beside_the_batch_a_worker_is_starting(
    client, emulator, worker_ctx, small_pages, monkeypatch
):
    through_send_slots: list[int | None] = []
    send_batch_of_slots = delivery.send_batch

    async def spied(**kwargs):
        through_send_slots.append(kwargs["low_id"])
        return await send_batch_of_slots(**kwargs)

    monkeypatch.setattr(delivery, "send_batch", spied)
    emulator.faults.update({"slow_latency_ms": SLOW_MS})
    big_tokens = [f"slow-big-{i}-{uuid.uuid4().hex}" for i in range(2 * PAGE)]
    await register_devices([("fcm", token, "vi") for token in big_tokens])
    headers = await central_sender(client)
    big = await broadcast(client, headers)
    await fan_out(worker_ctx, big)
    second = (await _pages(big))[1]
    # A send job of the broadcast takes the worker's send slot; its batch's chunks are slow.
    bulk = asyncio.ensure_future(send_batch(worker_ctx, big, second.low_id))
    for _ in range(500):  # up to 10 s: a parallel run is slow
        if await _leased(big):
            break
        await asyncio.sleep(0.02)
    assert await _leased(big)

    # A new push's first page (a slow token: it keeps the lane busy), then another (fast).
    first_token = f"slow-urgent-{uuid.uuid4().hex}"
    urgent = await _targeted(client, headers, worker_ctx, [first_token])
    (urgent_page,) = await _pages(urgent)
    on_lane = asyncio.ensure_future(
        send_batch(_first_page_job(worker_ctx, urgent), urgent, urgent_page.low_id)
    )
    for _ in range(500):  # up to 10 s: a parallel run is slow
        if emulator.log.find(token=first_token):
            break
        await asyncio.sleep(0.02)
    second_token = f"fast-urgent-{uuid.uuid4().hex}"
    later = await _targeted(client, headers, worker_ctx, [second_token])
    (later_page,) = await _pages(later)
    behind = asyncio.ensure_future(send_batch(_first_page_job(worker_ctx, later), later, later_page.low_id))
    await asyncio.wait_for(asyncio.gather(bulk, on_lane, behind), 30)

    arrived = {record.token: record.received_at for record in emulator.log.find(limit=1000)}
    held_batch = sorted(arrived[t] for t in big_tokens if t in arrived)
    assert len(held_batch) == PAGE, held_batch  # the one batch the bulk job sent
    # The first push went out while the held batch had started only its first two chunks...
    assert arrived[first_token] < held_batch[2], (arrived[first_token], held_batch)
    # ...and the lane holds one batch: the second push, finding it busy, went through the send
    # slots, i.e. waited for the held batch to hand its slot on (once its first two chunks had
    # started, issue 16 item 2; before, once its last chunk had), as every send job does.
    assert through_send_slots == [second.low_id, later_page.low_id], through_send_slots
    assert held_batch[1] < arrived[second_token] < held_batch[2], (arrived[second_token], held_batch)


async def test_the_first_page_lane_claims_first_pages_only(client, emulator, worker_ctx, small_pages):
    await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(2 * PAGE)])
    headers = await central_sender(client)
    big = await broadcast(client, headers)
    await fan_out(worker_ctx, big)
    first, second = await _pages(big)

    async def claim(nid: str, low_id: int) -> outbox.Claim | None:
        async with transaction() as session:
            return await outbox.claim_most_urgent(
                session,
                notification_id=uuid.UUID(nid),
                low_id=low_id,
                priorities=sharing_queue("high"),
                now=clock.utcnow(),
                first_only=True,
            )

    # The broadcast's second page is due, but it is not a first page: the lane takes the first.
    taken = await claim(big, second.low_id)
    assert taken is not None and taken.batch_id == first.id
    # With the first page held, only the second is due: nothing for the lane.
    assert await claim(big, second.low_id) is None
    assert await claim(big, first.low_id) is None
    with pytest.raises(ValueError, match="low_id"):
        async with transaction() as session:
            await outbox.claim_most_urgent(
                session,
                notification_id=uuid.UUID(big),
                low_id=None,
                priorities=sharing_queue("high"),
                now=clock.utcnow(),
                first_only=True,
            )


async def test_a_first_page_is_sent_when_announced_without_waiting_for_its_job(
    client, emulator, worker_ctx, providers
):
    """The commit that writes a first page announces it (notifications/first_pages.py); a worker
    of its queue sends it on its first-page lane at once. Here the page's job never runs: the
    announcement alone sends it. A worker of the other queue ignores it."""
    heard: list[str] = []
    queue = {"name": BULK_QUEUE}

    async def written(message: str) -> None:
        # What the worker's start-up registers (workers/settings.py).
        heard.append(message)
        page = first_pages.parse(message)
        assert page is not None
        await first_page_lane.send_announced(
            page, queue=queue["name"], providers=providers, badge_source=unread_badges
        )

    await cancellation.close()
    cancellation.also_listen(first_pages.CHANNEL, written)
    try:
        assert await cancellation.listening()
        token = f"ok-announced-{uuid.uuid4().hex}"
        headers = await central_sender(client)
        nid = await _targeted(client, headers, worker_ctx, [token])  # the fan-out writes the page
        for _ in range(500):  # up to 10 s: a parallel run is slow
            if heard:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert heard and not emulator.log.find(token=token)  # a high push: not the bulk worker's

        queue["name"] = HIGH_QUEUE
        other = f"ok-announced-{uuid.uuid4().hex}"
        nid = await _targeted(client, headers, worker_ctx, [other])
        for _ in range(500):  # up to 10 s: a parallel run is slow
            if emulator.log.find(token=other):
                break
            await asyncio.sleep(0.02)
        assert len(emulator.log.find(token=other)) == 1
        for _ in range(500):  # up to 10 s: a parallel run is slow
            notification, _ = await load(uuid.UUID(nid))
            if notification.status == "completed":
                break
            await asyncio.sleep(0.02)
        assert notification.status == "completed" and notification.sent == 1
    finally:
        cancellation.stop_hearing(first_pages.CHANNEL)
        await cancellation.close()


async def test_the_send_slots_hold_back_while_the_lane_works_and_not_for_long(monkeypatch):
    """While the lane claims and starts a first page, the send slots start no new chunk or claim
    in the process (``delivery.bulk_yields``), until the lane's page has started, and never longer
    than ``YIELD_SECONDS``."""
    order: list[str] = []

    async def bulk() -> None:
        await delivery._bulk_may_start()
        order.append("bulk")

    with delivery.bulk_yields() as started:
        waiting = asyncio.ensure_future(bulk())
        await asyncio.sleep(0.05)
        order.append("lane started")
        started()
        await waiting
    assert order == ["lane started", "bulk"]

    monkeypatch.setattr(delivery, "YIELD_SECONDS", 0.1)
    with delivery.bulk_yields():
        # A lane that never gets its page started holds nothing back for more than the bound.
        await asyncio.wait_for(delivery._bulk_may_start(), 1.0)
    await asyncio.wait_for(delivery._bulk_may_start(), 0.1)  # and nothing once it is done


async def test_a_shutdown_during_an_announced_send_writes_what_is_on_the_wire(
    client, emulator, worker_ctx, providers, small_pages
):
    """Lane sends are not arq jobs: the worker's shutdown cancels them as arq cancels its jobs
    (``first_page_lane.stop_announced``), so the requests on the wire are answered and written
    and nothing is left to be sent again when the lease ends."""
    emulator.faults.update({"slow_latency_ms": 1000.0})
    tokens = [f"slow-stop-{i}-{uuid.uuid4().hex}" for i in range(PAGE)]
    devices = await register_devices([("fcm", token, "vi") for token in tokens])
    headers = await central_sender(client)
    nid = await release_approved(
        client, headers, notification_body(audience={"devices": [str(d) for d in devices]})
    )
    async with transaction() as session:
        await fanout.fan_out_page(session, notification_id=uuid.UUID(nid), now=clock.utcnow())
    (page,) = await _pages(nid)
    announced = first_pages.FirstPage(uuid.UUID(nid), page.low_id, HIGH_QUEUE)
    sending = asyncio.ensure_future(
        first_page_lane.send_announced(
            announced, queue=HIGH_QUEUE, providers=providers, badge_source=unread_badges
        )
    )

    def reached() -> set[str]:
        return {token for token in tokens if emulator.log.find(token=token)}

    for _ in range(500):  # up to 10 s: a parallel run is slow
        if reached():
            break
        await asyncio.sleep(0.02)
    await first_page_lane.stop_announced()  # what the worker's shutdown does
    assert sending.done()

    _, deliveries = await load(uuid.UUID(nid))
    token_of = dict(zip(devices, tokens, strict=True))
    on_the_wire = reached()
    # What reached the provider was answered and written; what never started is due again at
    # once (the batch let go, not left to its lease).
    assert 0 < len(on_the_wire) < PAGE, on_the_wire
    assert {d.status for d in deliveries if token_of[d.device_id] in on_the_wire} == {"sent"}
    assert {d.status for d in deliveries if token_of[d.device_id] not in on_the_wire} == {"pending"}
    (page,) = await _pages(nid)
    assert page.leased_until is None and page.status == "open"


async def test_an_announced_page_is_left_to_a_live_urgent_worker_which_queues_for_its_lane(
    client, emulator, worker_ctx, providers
):
    """notifications/urgent_role.py: an ordinary worker that knows an urgent worker of its queue
    is alive ignores the announcement (the page's job remains); the urgent worker, whose lane is
    busy, waits for it up to the hand-over instead of leaving the page to its job."""
    headers = await central_sender(client)
    token = f"ok-left-{uuid.uuid4().hex}"
    nid = await _targeted(client, headers, worker_ctx, [token])
    (page,) = await _pages(nid)
    announced = first_pages.FirstPage(uuid.UUID(nid), page.low_id, HIGH_QUEUE)
    urgent_role.note_presence(present=True)
    try:
        await first_page_lane.send_announced(
            announced, queue=HIGH_QUEUE, providers=providers, badge_source=unread_badges
        )
    finally:
        urgent_role.note_presence(present=False)
    assert not await _leased(nid) and not emulator.log.find(token=token)

    lane = first_page_lane._lane()
    await lane.acquire()  # another page on the lane
    sending = asyncio.ensure_future(
        first_page_lane.send_announced(
            announced, queue=HIGH_QUEUE, providers=providers, badge_source=unread_badges, wait_for_lane=5.0
        )
    )
    await asyncio.sleep(0.3)
    assert not sending.done()
    lane.release()
    await asyncio.wait_for(sending, 10)
    assert len(emulator.log.find(token=token)) == 1
