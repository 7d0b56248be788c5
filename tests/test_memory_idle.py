"""``MemoryBroker.wait_idle()`` and strict mode.

``wait_idle`` returns once every message published so far was taken by its consumer loop,
every loop has finished with its message and no task is runnable: "after the publish, all
handlers ran", without a sleep.  Strict mode re-raises a handler's exception in the test.
The bug they are for: a lost update between concurrent handlers, asserted deterministically.
"""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from micro import Client, Request, ServiceError, add_service
from transports.memory import MemoryBroker

WAIT = 5.0

pytestmark = pytest.mark.anyio


async def test_wait_idle_returns_after_consumer_loops_handled_everything(
    micro_broker: MemoryBroker,
) -> None:
    subscriber = await micro_broker.connect()
    publisher = await micro_broker.connect()
    sub = await subscriber.subscribe("work")
    handled: list[bytes] = []

    async def consume() -> None:
        async for msg in sub:
            await anyio.sleep(0.01)  # the handler is still busy after taking the message
            handled.append(msg.data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        for number in range(3):
            await publisher.publish("work", str(number).encode())
        await micro_broker.wait_idle(timeout=WAIT)
        assert handled == [b"0", b"1", b"2"]
        assert micro_broker.is_idle
        tg.cancel_scope.cancel()


async def test_probe_subscriptions_read_by_the_test_are_not_waited_for(
    micro_broker: MemoryBroker,
) -> None:
    conn = await micro_broker.connect()
    probe = await conn.subscribe("probe")
    await conn.publish("probe", b"x")
    await micro_broker.wait_idle(timeout=WAIT)  # nobody iterates the probe: not waited for
    assert probe.pending_msgs == 1


async def test_the_calling_task_breaking_out_of_its_loop_is_not_busy(
    micro_broker: MemoryBroker,
) -> None:
    conn = await micro_broker.connect()
    sub = await conn.subscribe("x")
    await conn.publish("x", b"1")
    async for _ in sub:
        break
    await micro_broker.wait_idle(timeout=WAIT)


async def test_a_stuck_consumer_times_out_naming_it(micro_broker: MemoryBroker) -> None:
    conn = await micro_broker.connect(name="stuck-service")
    sub = await conn.subscribe("jobs")
    never = anyio.Event()

    async def stuck(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        async for _ in sub:
            await never.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(stuck)
        await conn.publish("jobs", b"1")
        await conn.publish("jobs", b"2")
        with pytest.raises(TimeoutError) as caught:
            await micro_broker.wait_idle(timeout=0.2)
        text = str(caught.value)
        assert "'jobs'" in text
        assert "still handling a message" in text
        assert "1 message(s) not yet taken" in text
        tg.cancel_scope.cancel()
    with pytest.raises(ValueError, match="timeout"):
        await micro_broker.wait_idle(timeout=0)


# ------------------------------------------------------------------ strict mode


async def failing(request: Request) -> None:
    if request.data() == b"typed":
        raise ServiceError(409, "conflict")  # intended: an error reply, not a bug
    raise KeyError("missing-field")


async def test_strict_mode_reraises_the_handler_exception(micro_broker: MemoryBroker) -> None:
    service = add_service(await micro_broker.connect(), "svc", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_endpoint("op", failing)
        with pytest.raises(ServiceError) as reply:
            await client.request("op", b"typed")
        assert reply.value.code == 409
        await micro_broker.wait_idle(timeout=WAIT)  # a ServiceError is not kept
        with pytest.raises(ServiceError) as reply:
            await client.request("op", b"bug")
        assert reply.value.code == 500  # the caller still sees the error reply
        [failure] = micro_broker.handler_failures
        assert failure.subject == "op"
        with pytest.raises(KeyError, match="missing-field"):
            await micro_broker.wait_idle(timeout=WAIT)
        assert micro_broker.handler_failures == []


async def test_expected_handler_errors_can_be_taken(micro_broker: MemoryBroker) -> None:
    service = add_service(await micro_broker.connect(), "svc", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_endpoint("op", failing)
        for _ in range(2):
            with pytest.raises(ServiceError):
                await client.request("op", b"bug")
    errors = micro_broker.take_handler_errors()
    assert [type(e) for e in errors] == [KeyError, KeyError]
    micro_broker.raise_handler_errors()  # nothing left


@pytest.mark.micro_broker(strict=False)
async def test_a_lenient_broker_keeps_nothing(micro_broker: MemoryBroker) -> None:
    assert not micro_broker.strict
    service = add_service(await micro_broker.connect(), "svc", "1.0.0")
    client = Client(await micro_broker.connect())
    async with service:
        await service.add_endpoint("op", failing)
        with pytest.raises(ServiceError):
            await client.request("op", b"bug")
    await micro_broker.wait_idle(timeout=WAIT)
    assert micro_broker.handler_failures == []
    micro_broker.strict = True
    assert micro_broker.strict


# ------------------------------------------------------------------ the bug it catches


class Inventory:
    """A projection updated by an event handler; the read-modify-write spans an await
    (think: a database round trip)."""

    def __init__(self, stock: int, *, locked: bool) -> None:
        self.stock = stock
        self._lock = anyio.Lock() if locked else None

    async def _write(self, value: int) -> None:
        await anyio.sleep(0.01)  # the round trip
        self.stock = value

    async def reserve(self, request: Request) -> None:
        quantity = int(request.data())
        if self._lock is None:  # BUG: two concurrent reservations lose an update
            current = self.stock
            await self._write(current - quantity)
            return
        async with self._lock:
            await self._write(self.stock - quantity)


@pytest.mark.parametrize("locked", [False, True])
async def test_wait_idle_makes_a_lost_update_visible_without_sleeping(
    micro_broker: MemoryBroker, locked: bool
) -> None:
    inventory = Inventory(10, locked=locked)
    service = add_service(await micro_broker.connect(), "inventory", "1.0.0")
    shop = await micro_broker.connect()
    async with service:
        await service.add_endpoint("reserve", inventory.reserve, max_concurrency=4)
        await shop.publish("reserve", b"2")  # events: nobody waits for a reply
        await shop.publish("reserve", b"1")
        assert inventory.stock == 10  # asserting now would test nothing: nothing ran yet
        await micro_broker.wait_idle(timeout=WAIT)  # both handlers (own tasks) have finished
        assert micro_broker._handlers_running == 0
        # 10 - 2 - 1 = 7 is right; the unlocked version loses an update (the bug caught).
        lost_an_update = inventory.stock != 7
        assert lost_an_update == (not locked), inventory.stock


# ------------------------------------------------------------------ the protocols micro calls


class _Reporting:
    """Any transport (here: a memory connection behind a wrapper) implementing the optional
    ``HandlerErrorSink`` and ``HandlerTracker`` protocols; micro knows nothing else of it."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.failed: list[tuple[str, type[BaseException]]] = []
        self.running = 0
        self.started = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def handler_failed(self, subject: str, error: Exception) -> None:
        self.failed.append((subject, type(error)))

    def handler_started(self) -> None:
        self.running += 1
        self.started += 1

    def handler_finished(self) -> None:
        self.running -= 1


async def test_micro_reports_through_the_optional_protocols() -> None:
    from transports._protocols import implements
    from transports.base import Transport
    from transports.extensions import HandlerErrorSink, HandlerTracker

    broker = MemoryBroker()
    reporting = _Reporting(await broker.connect())
    # not isinstance: since 3.12 it no longer sees the members __getattr__ serves
    assert implements(reporting, Transport)
    assert implements(reporting, HandlerErrorSink)
    assert implements(reporting, HandlerTracker)
    service = add_service(reporting, "svc", "1.0.0")
    client = Client(await broker.connect())
    async with service:
        await service.add_endpoint("op", failing)
        await service.add_endpoint("many", failing, subject="many", max_concurrency=3)
        for subject, payload in (("op", b"typed"), ("op", b"bug"), ("many", b"bug")):
            with pytest.raises(ServiceError):
                await client.request(subject, payload)
        assert reporting.failed == [("op", KeyError), ("many", KeyError)]  # not ServiceError
        await broker.wait_idle(timeout=WAIT)
        assert (reporting.started, reporting.running) == (1, 0)  # only the concurrent one
