"""Service conformance, group I (stop and life cycle)."""

from __future__ import annotations

import anyio
import pytest

from micro.errors import ServiceStoppedError
from micro.request import Request
from micro.service import Service, add_service
from transports.base import (
    Msg,
    PermissionViolationError,
    SlowConsumerError,
    TransportError,
    TransportEvent,
    TransportEventKind,
)

from ._service_support import (
    ServiceEnv,
    ServiceSuiteBase,
    echo,
    gather,
    subject_forms,
)
from ._suite_base import QUIET, WAIT, Recorder, assert_no_responders
from ._tapped_transport import TappedTransport

__all__ = ["LifecycleCases"]


async def _stopped(service: Service) -> BaseException | None:
    with anyio.fail_after(WAIT):
        return await service.wait_stopped()


class LifecycleCases(ServiceSuiteBase):
    """I. Stop, drain, done notification, and what stops a service by itself."""

    async def test_i67_stop_sets_stopped_and_is_idempotent(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.add_endpoint("ep", echo)
        assert not service.stopped()
        await service.stop()
        assert service.stopped()
        await service.stop()
        assert service.stopped()
        assert service.info().endpoints == []

    async def test_i68_stopped_instance_does_not_answer_discovery(
        self, service_env: ServiceEnv
    ) -> None:
        service = await service_env.service()
        client = await service_env.client()
        assert len(await gather(client, f"$SRV.STATS.svc.{service.id}", max_count=1)) == 1
        await service.stop()
        for subject in subject_forms("STATS", service):
            replies = await gather(client, subject, stall=QUIET, timeout=QUIET)
            assert [msg for msg in replies if service.id.encode() in msg.data] == []

    async def test_i69_stopped_endpoint_gives_no_responders(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.add_endpoint("ep", echo)
        client = await service_env.client()
        assert (await client.request("ep", b"1", timeout=WAIT)).data == b"1"
        await service.stop()
        await assert_no_responders(client, "ep")

    async def test_i70_adding_an_endpoint_after_stop_fails(self, service_env: ServiceEnv) -> None:
        service = await service_env.service()
        await service.stop()
        with pytest.raises(ServiceStoppedError, match="Cannot add endpoint to a stopped service"):
            await service.add_endpoint("ep", echo)
        with pytest.raises(ServiceStoppedError):
            await service.add_group("g").add_endpoint("ep", echo)
        await assert_no_responders(await service_env.client(), "ep")

    async def test_i71_done_fires_once_and_stop_carries_its_error(
        self, service_env: ServiceEnv
    ) -> None:
        done = Recorder()
        plain = await service_env.service(done_handler=done)
        await plain.stop()
        await plain.stop()
        assert await _stopped(plain) is None
        assert done.calls == [(plain,)]
        failing_done = Recorder()
        failing = await service_env.service(done_handler=failing_done)
        cause = RuntimeError("shutting down for maintenance")
        await failing.stop(cause)
        await failing.stop()
        assert await _stopped(failing) is cause
        assert failing.stop_error is cause
        assert failing_done.calls == [(failing,)]

    async def test_i72_closing_the_connection_stops_the_service(
        self, service_env: ServiceEnv
    ) -> None:
        done = Recorder()
        connection = await service_env.connect()
        service = await service_env.service(transport=connection, done_handler=done)
        await service.add_endpoint("ep", echo)
        await connection.close()
        assert await _stopped(service) is None
        assert service.stopped()
        assert await done.wait(1) == [(service,)]
        assert await done.stays_below(2)

    @pytest.mark.parametrize("which", ["endpoint", "control"])
    async def test_i73_subscription_ending_under_the_service_stops_it(
        self, service_env: ServiceEnv, which: str
    ) -> None:
        errors = Recorder()
        done = Recorder()
        service = await service_env.service(error_handler=errors, done_handler=done)
        endpoint = await service.add_endpoint("ep", echo)
        if which == "endpoint":
            subscription = endpoint.subscription
            subject = "ep"
        else:  # the suite reaches into the service: no public handle on control subscriptions
            subscription = service._control[0]
            subject = "$SRV.PING"
        assert subscription is not None
        await subscription.unsubscribe()
        error = await _stopped(service)
        assert isinstance(error, ServiceStoppedError)
        assert str(error) == f"required subscription {subject} stopped"
        assert (await errors.wait(1))[0] == (service, error)
        assert await done.wait(1) == [(service,)]
        await assert_no_responders(await service_env.client(), "ep")

    async def test_i73_denied_subscription_fails_the_start(self, service_env: ServiceEnv) -> None:
        transport = TappedTransport(await service_env.connect())
        done = Recorder()
        service = service_env.track(add_service(transport, "svc", "1.0.0", done_handler=done))
        await service.add_endpoint("secret", echo)
        transport.deny("secret")
        with pytest.raises(PermissionViolationError, match="secret"):
            await service.start()
        assert service.stopped()
        assert isinstance(service.stop_error, PermissionViolationError)
        assert done.calls == [(service,)]
        await assert_no_responders(await service_env.client(), "$SRV.PING.svc")  # none left

    async def test_i74_requests_in_flight_and_buffered_when_stop_is_called_are_answered(
        self, service_env: ServiceEnv
    ) -> None:
        entered = anyio.Event()
        release = anyio.Event()

        async def slow(request: Request) -> None:
            entered.set()
            await release.wait()
            await request.respond(request.data())

        service = await service_env.service()
        endpoint = await service.add_endpoint("ep", slow)
        subscription = endpoint.subscription
        assert subscription is not None
        client = await service_env.client()
        replies: list[Msg] = []
        stopping = anyio.Event()

        async def call(payload: bytes) -> None:
            replies.append(await client.request("ep", payload, timeout=WAIT))

        async def stop() -> None:
            stopping.set()
            await service.stop()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:
                group.start_soon(call, b"in flight")
                await entered.wait()
                group.start_soon(call, b"buffered")
                while subscription.pending_msgs < 1:  # round trips until it is buffered
                    await client.request(f"$SRV.PING.svc.{service.id}", timeout=WAIT)
                group.start_soon(stop)
                await stopping.wait()
                with pytest.raises(ServiceStoppedError):  # the stop has begun
                    await service.add_endpoint("late", echo)
                assert not service.stopped()
                release.set()
        assert sorted(reply.data for reply in replies) == [b"buffered", b"in flight"]
        assert service.stopped()

    @pytest.mark.parametrize(
        ("endpoint_subject", "published"),
        [("foo.bar.baz", "foo.bar.baz"), ("foo.*.baz", "foo.bar.baz"), ("foo.>", "foo.bar.baz")],
    )
    async def test_i75_slow_consumer_on_an_endpoint_is_reported_and_counted(
        self, service_env: ServiceEnv, endpoint_subject: str, published: str
    ) -> None:
        entered = anyio.Event()
        release = anyio.Event()

        async def blocked(request: Request) -> None:
            entered.set()
            await release.wait()

        errors = Recorder()
        service = await service_env.service(error_handler=errors)
        endpoint = await service.add_endpoint(
            "slow", blocked, subject=endpoint_subject, pending_msgs_limit=1
        )
        client = await service_env.client()
        await client.publish(published, b"first")
        with anyio.fail_after(WAIT):
            await entered.wait()
        for _ in range(20):
            await client.publish(published, b"more")
        await client.flush()
        (_, error), *_ = await errors.wait(1)
        assert isinstance(error, SlowConsumerError)
        release.set()
        assert endpoint.stats.num_errors >= 1
        assert endpoint.stats.last_error.startswith("500:SlowConsumerError: slow consumer")
        # Our ruling (nats.go would stop): dropped messages are load, the service keeps serving.
        assert not service.stopped()
        await service.add_endpoint("still", echo, subject="still.serving")
        assert (await client.request("still.serving", b"yes", timeout=WAIT)).data == b"yes"

    async def test_i75_slow_consumer_elsewhere_is_ignored(self, service_env: ServiceEnv) -> None:
        errors = Recorder()
        connection = await service_env.connect()
        service = await service_env.service(transport=connection, error_handler=errors)
        await service.add_endpoint("ep", echo, subject="foo.bar.baz")
        seen = Recorder()
        connection.add_event_listener(seen)
        others = ["foo.baz.bar", "foo.bar", "foo.bar.baz.qux"]
        for subject in others:
            await connection.subscribe(subject, pending_msgs_limit=1)
        client = await service_env.client()
        for subject in others:
            for _ in range(5):
                await client.publish(subject, b"x")
        await client.flush()
        await seen.wait_until(  # a slow-consumer error for each of the others
            lambda: (
                {
                    event.error.subject
                    for event in seen.events
                    if isinstance(event.error, SlowConsumerError)
                }
                >= set(others)
            )
        )
        assert await errors.stays_below(1)
        assert not service.stopped()
        assert (await client.request("foo.bar.baz", b"alive", timeout=WAIT)).data == b"alive"

    @pytest.mark.parametrize(
        ("endpoint_subject", "error", "concerned"),
        [
            ("foo.bar.baz", SlowConsumerError("foo.bar.baz"), True),
            ("foo.*.baz", SlowConsumerError("foo.bar.baz"), True),
            ("foo.*", SlowConsumerError("foo.bar"), True),
            ("foo.>", SlowConsumerError("foo.bar.baz"), True),
            ("foo.>", SlowConsumerError("foo.bar"), True),
            ("foo.bar.baz", SlowConsumerError("$SRV.PING"), True),
            ("foo.bar.baz", SlowConsumerError("$SRV.STATS.svc"), True),
            ("foo.bar.baz", PermissionViolationError("subscription", "foo.bar.baz"), True),
            ("foo.bar.baz", SlowConsumerError("foo.baz.bar"), False),
            ("foo.bar.baz", SlowConsumerError("foo.bar"), False),
            ("foo.bar.baz", SlowConsumerError("foo.bar.baz.qux"), False),
            ("foo.*", SlowConsumerError("foo.bar.baz"), False),
            ("foo.>", SlowConsumerError("foo"), False),
            ("foo.bar.baz", SlowConsumerError("$SRV.PING.other"), False),
            ("foo.bar.baz", PermissionViolationError("publish", "foo.baz"), False),
        ],
        ids=lambda value: str(getattr(value, "subject", value)),
    )
    async def test_i75_asynchronous_error_subject_matching(
        self,
        service_env: ServiceEnv,
        endpoint_subject: str,
        error: TransportError,
        concerned: bool,
    ) -> None:
        transport = TappedTransport(await service_env.connect())
        errors = Recorder()
        service = await service_env.service(transport=transport, error_handler=errors)
        await service.add_endpoint("ep", echo, subject=endpoint_subject)
        transport.inject(TransportEvent(TransportEventKind.ERROR, error))
        if concerned:
            assert (await errors.wait(1))[0] == (service, error)
            if isinstance(error, SlowConsumerError):
                assert not service.stopped()  # counted and reported; the service serves on
            else:
                assert await _stopped(service) is error
        else:
            assert await errors.stays_below(1)
            assert not service.stopped()
