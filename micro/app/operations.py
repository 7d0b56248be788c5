"""What the App's calls do, in its event loop: publish, request, (un)subscribe.

Each function takes the app's :class:`~micro.app.core.AppCore`.  ``publish`` and
``request`` run the app's send middlewares around the innermost step (encode, hand to
the transport); ``subscribe`` adds a listener exactly as ``@app.listen`` would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio

from micro._support import drain_quietly, unsubscribe_quietly
from micro.app.core import AppCore, State
from micro.app.data_types import DataType, codec_for, encode
from micro.app.errors import AppNotRunningError
from micro.app.listeners import ActiveListener
from micro.app.middleware import PUBLISH, REQUEST, SendFunc
from micro.app.registry import make_listener_spec
from micro.endpoint import Endpoint
from micro.errors import ServiceError
from micro.service import Service
from transports.base import Headers, Transport

__all__ = ["publish", "request", "subscribe", "unsubscribe_ssid", "unsubscribe_subject"]


def _finals(core: AppCore) -> tuple[SendFunc, SendFunc]:
    """The innermost send functions, made once per app (middleware chains cache on them)."""
    finals = core.finals
    if finals is None:
        finals = core.finals = (partial(_send_publish, core), partial(_send_request, core))
    return finals


def _payload(message: Any, data_type: DataType) -> bytes:
    return encode(message) if data_type is None else codec_for(data_type).encode(message)


async def publish(
    core: AppCore,
    subject: str,
    message: Any,
    reply_to: str | None,
    force: bool,
    data_type: DataType,
    headers: Headers | None,
) -> None:
    transport = core.check_running("publish")
    if not core.middlewares:
        await _deliver(transport, subject, message, reply_to, force, data_type, headers)
        return
    if data_type is not None:
        codec_for(data_type)  # an unusable data type fails before any middleware runs
    send = core.middlewares.send_chain(PUBLISH, _finals(core)[0])
    await send(
        subject, message, reply_to=reply_to, force=force, data_type=data_type, headers=headers
    )


async def _send_publish(
    core: AppCore,
    subject: str,
    message: Any,
    *,
    reply_to: str | None = None,
    force: bool = False,
    data_type: DataType = None,
    headers: Headers | None = None,
) -> None:
    transport = core.check_running("publish")
    await _deliver(transport, subject, message, reply_to, force, data_type, headers)


async def _deliver(
    transport: Transport,
    subject: str,
    message: Any,
    reply_to: str | None,
    force: bool,
    data_type: DataType,
    headers: Headers | None,
) -> None:
    await transport.publish(subject, _payload(message, data_type), reply=reply_to, headers=headers)
    if force:
        await transport.flush()


async def request(
    core: AppCore,
    subject: str,
    message: Any,
    timeout: float | None,  # noqa: ASYNC109 - the page's parameter, passed to the transport
    data_type: DataType,
    response_data_type: DataType,
    headers: Headers | None,
) -> Any:
    transport = core.check_running("request")
    if timeout is None:
        timeout = core.config.request_timeout
    if not core.middlewares:
        return await _ask(
            transport, subject, message, timeout, data_type, response_data_type, headers
        )
    if data_type is not None:
        codec_for(data_type)
    codec_for(response_data_type)
    send = core.middlewares.send_chain(REQUEST, _finals(core)[1])
    return await send(
        subject,
        message,
        timeout=timeout,
        data_type=data_type,
        response_data_type=response_data_type,
        headers=headers,
    )


async def _send_request(
    core: AppCore,
    subject: str,
    message: Any,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - the page's parameter
    data_type: DataType = None,
    response_data_type: DataType = None,
    headers: Headers | None = None,
) -> Any:
    transport = core.check_running("request")
    if timeout is None:
        timeout = core.config.request_timeout
    return await _ask(transport, subject, message, timeout, data_type, response_data_type, headers)


async def _ask(
    transport: Transport,
    subject: str,
    message: Any,
    timeout: float,  # noqa: ASYNC109 - the page's parameter, passed to the transport
    data_type: DataType,
    response_data_type: DataType,
    headers: Headers | None,
) -> Any:
    codec = codec_for(response_data_type)  # an unusable data type fails before sending
    payload = _payload(message, data_type)
    reply = await transport.request(subject, payload, headers=headers, timeout=timeout)
    if reply.headers:
        error = ServiceError.from_headers(reply.headers, subject=subject, data=reply.data)
        if error is not None:
            raise error
    return codec.decode(reply.data)


async def subscribe(
    core: AppCore,
    subject: str,
    callback: Callable[..., Any],
    queue: str | None,
    data_type: DataType,
    name: str | None,
) -> str:
    core.check_running("subscribe_new_subject")
    if core.state is not State.RUNNING:
        raise AppNotRunningError(f"app {core.label!r} is stopping: cannot subscribe")
    spec = make_listener_spec(
        core.new_ssid, subject, callback, queue=queue, data_type=data_type, name=name
    )
    active = ActiveListener(spec, core.handler_for(spec))
    if core.service is not None:
        active.endpoint = await core.add_endpoint(core.service, active)
    else:
        subscription = await core.plain_subscribe(spec)
        if core.state_now() is not State.RUNNING:
            await unsubscribe_quietly(subscription)
            raise AppNotRunningError(f"app {core.label!r} is stopping: cannot subscribe")
        core.spawn_plain(active, subscription)
    core.listeners[spec.ssid] = active
    return spec.ssid


async def unsubscribe_subject(core: AppCore, subject: str, wait: bool) -> None:
    core.check_running("unsubscribe_subject")
    found = [a for a in core.listeners.values() if a.spec.subject == subject]
    if not found:
        subjects = sorted({a.spec.subject for a in core.listeners.values()})
        raise ValueError(f"no listener is subscribed to {subject!r}; subscribed: {subjects}")
    await _remove(core, found, wait)


async def unsubscribe_ssid(core: AppCore, ssid: str, wait: bool) -> None:
    core.check_running("unsubscribe_ssid")
    if not isinstance(ssid, str):
        raise TypeError(f"ssid must be a str (as subscribe_new_subject returns), got {ssid!r}")
    active = core.listeners.get(ssid)
    if active is None:
        hint = ""
        if any(a.spec.subject == ssid for a in core.listeners.values()):
            hint = f"; {ssid!r} is a subject: use unsubscribe_subject({ssid!r})"
        raise ValueError(
            f"unknown ssid {ssid!r}: known subscription ids are {sorted(core.listeners)}{hint}"
        )
    await _remove(core, [active], wait)


async def _remove(core: AppCore, actives: list[ActiveListener], wait: bool) -> None:
    for active in actives:
        active.removed = True
        core.listeners.pop(active.spec.ssid, None)
    async with anyio.create_task_group() as group:
        for active in actives:
            group.start_soon(_remove_one, core, active, wait)


async def _remove_one(core: AppCore, active: ActiveListener, wait: bool) -> None:
    """Stop one listener: drain it (received messages are still handled).  With ``wait``,
    return once its last message was handled; else let that finish in the background."""
    service = core.service
    if active.endpoint is not None and service is not None:
        if wait:
            await service.remove_endpoint(active.endpoint)
        else:
            core.host.start_soon(_remove_endpoint_quietly, service, active.endpoint)
        return
    subscription = active.subscription
    if subscription is None:
        return
    if wait:
        await drain_quietly(subscription)
        await active.done.wait()
    else:
        core.host.start_soon(drain_quietly, subscription)


async def _remove_endpoint_quietly(service: Service, endpoint: Endpoint) -> None:
    with contextlib.suppress(ValueError):  # the service stopped meanwhile and drained it
        await service.remove_endpoint(endpoint)
