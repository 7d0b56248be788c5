"""The calls of the App Functions page, shared by ``App`` and its ``app.nats`` facade.

Each call is defined once, as the ``async`` method that does the work in the app's event
loop (``await app.publish(...)``).  Its other forms are generated from that definition:

* ``app.X_sync(...)`` (:func:`blocking`) -- a plain function: ``await app.X(...)`` run in
  the app's loop through the app's one blocking portal (see ``micro.app.home``), from any
  thread.  On an app that has not started yet, the first blocking call starts it in a
  thread of its own.  In the app loop's own thread, where waiting would block the loop,
  ``publish_sync`` hands the message over and returns (as Panini's does),
  ``disconnect_sync`` begins the stop, and the calls whose result must be waited for
  (``request_sync``, ``subscribe_new_subject_sync``, ``unsubscribe_*_sync``) raise
  ``SyncCallInLoopError`` naming the ``await`` form to use;
* ``app.publish_from_another_thread(...)`` (:func:`handed_over`) -- a plain function that
  does not wait: the publish is queued in the app's outbox and sent in the app's loop,
  in hand-over order; a failure is logged (``micro.app``);
* ``await app.request_from_another_thread(...)`` (:func:`from_another_loop`) -- a
  coroutine for code running in *another* event loop (another thread's): the request
  runs in the app's loop while the caller's loop stays free (it waits in a worker
  thread).  Plain threads without a loop use ``request_sync``.

A generated form has the async method's parameters (for mypy, ``inspect.signature`` and
``help()``) and its docstring, introduced as its form.  ``app.nats`` offers every
one of these names too: the page uses both spellings.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from micro._running import Phase
from micro.app.data_types import DataType, codec_for, encode
from micro.app.errors import AppNotRunningError
from micro.app.listeners import INSIDE_APP
from micro.app.message import Message
from micro.app.middleware import PUBLISH, REQUEST
from micro.app.registry import SERVICE_QUEUE, Queue, check_listener_options
from micro.endpoint import Endpoint
from micro.errors import ServiceError, ServiceStoppedError
from micro.service import Service

if TYPE_CHECKING:
    from micro.app.core import AppCore

__all__ = ["Calls", "blocking", "blocking_stop", "from_another_loop", "handed_over"]

Callback = Callable[[Message], Any]

S = TypeVar("S", bound="Calls")
P = ParamSpec("P")
T = TypeVar("T")


def _describe(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """``name(subject=...)`` for the log record of a handed-over call that failed."""
    subject = args[0] if args else kwargs.get("subject")
    return f"{name}(subject={subject!r})"


def _as_form(call: Callable[..., Any], method: Callable[..., Any], name: str, summary: str) -> None:
    """Give ``call`` the identity of ``method``'s form ``name``, introduced by ``summary``."""
    functools.update_wrapper(call, method)  # __wrapped__: inspect.signature shows method's
    call.__name__ = name
    call.__qualname__ = f"{method.__qualname__.rpartition('.')[0]}.{name}"
    call.__doc__ = f"{textwrap.fill(summary, 88)}\n\n{inspect.cleandoc(method.__doc__ or '')}"


def _as_blocking_form(
    call: Callable[..., Any], method: Callable[..., Any], name: str, note: str
) -> None:
    summary = (
        f"Blocking form of :meth:`{method.__name__}` (a plain function: do not ``await`` "
        f"it): ``await app.{method.__name__}(...)`` run in the app's event loop through its "
        f"portal, returning its result or raising its error.  {note}"
    )
    _as_form(call, method, name, summary)


def blocking(
    method: Callable[Concatenate[S, P], Awaitable[T]], *, hand_over_in_loop: bool = False
) -> Callable[Concatenate[S, P], T]:
    """The blocking form ``<method>_sync`` of the async call ``method``: see the module
    docstring and ``AppCore.call_blocking``.  ``hand_over_in_loop`` (calls whose result
    is ``None``): in the app loop's own thread, queue the call and return instead of
    raising ``SyncCallInLoopError``."""
    async_name = method.__name__
    blocking_name = f"{async_name}_sync"

    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        work = functools.partial(method, self, *args, **kwargs)
        core = self._core
        if hand_over_in_loop and core.home.in_loop_thread():
            core.hand_over(blocking_name, _describe(blocking_name, args, kwargs), work)
            return None  # type: ignore[return-value]  # only for calls returning None
        return core.call_blocking(blocking_name, async_name, work)

    if hand_over_in_loop:
        where = (
            "In the app loop's own thread it does not wait: the call is queued and runs "
            "in the loop soon after (in order; a failure is logged on 'micro.app')."
        )
    else:
        where = (
            "In the app loop's own thread it raises ``SyncCallInLoopError``: use ``await "
            f"app.{async_name}(...)`` there."
        )
    note = f"{where}  On an app that has not started, it first starts it in a thread of its own."
    _as_blocking_form(call, method, blocking_name, note)
    return call


def handed_over(
    method: Callable[Concatenate[S, P], Awaitable[None]], name: str
) -> Callable[Concatenate[S, P], None]:
    """A plain function ``name`` that queues ``await method(...)`` in the app's outbox and
    returns at once, from any thread (``AppCore.hand_over``)."""

    def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        work = functools.partial(method, self, *args, **kwargs)
        self._core.hand_over(name, _describe(name, args, kwargs), work)

    summary = (
        f"Non-waiting form of :meth:`{method.__name__}` (a plain function, from any "
        "thread): the call is queued and runs in the app's event loop soon after, in the "
        "order of the calls; it returns at once.  Its errors cannot reach the caller: they "
        "are logged on the 'micro.app' logger.  Raises ``AppNotRunningError`` at once once "
        "the app is stopping; an app that has not started is first started in a thread of "
        "its own."
    )
    _as_form(call, method, name, summary)
    return call


def from_another_loop(
    method: Callable[Concatenate[S, P], Awaitable[T]], name: str
) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """A coroutine function ``name`` for code in another event loop: ``await method(...)``
    runs in the app's loop while the caller's loop waits in a worker thread."""
    async_name = method.__name__

    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        work = functools.partial(method, self, *args, **kwargs)
        core = self._core
        if core.home.in_loop_thread():
            return await work()
        return await anyio.to_thread.run_sync(core.call_blocking, name, async_name, work)

    summary = (
        f"Form of :meth:`{method.__name__}` for coroutines of another event loop (another "
        f"thread's): ``await app.{name}(...)`` runs the call in the app's loop and returns "
        "its result or raises its error, while the calling loop stays responsive (it waits "
        "in a worker thread).  In the app's own loop it is the call itself.  From a plain "
        f"thread without an event loop use ``app.{async_name}_sync(...)``."
    )
    _as_form(call, method, name, summary)
    return call


def blocking_stop(method: Callable[[S], Awaitable[None]]) -> Callable[[S], None]:
    """:func:`blocking` for the call that stops the app: it never starts an app that has
    not started, and it also ends the app's own thread (``AppCore.stop_blocking``)."""

    def call(self: S) -> None:
        self._core.stop_blocking(functools.partial(method, self))

    note = "An app that never started is just over; it also ends the app's own thread."
    _as_blocking_form(call, method, f"{method.__name__}_sync", note)
    return call


class Calls:
    """The call surface; ``self._core`` is the state of the App doing the work."""

    _core: AppCore

    # ------------------------------------------------------------------ publish

    async def publish(
        self,
        subject: str,
        message: Any = b"",
        *,
        reply_to: str | None = None,
        force: bool = False,
        data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish ``message`` to ``subject`` (through the send middlewares).

        The body is encoded with ``data_type`` or, without it, by the value's type
        (``micro.app.data_types``).  ``reply_to`` sets the reply subject (the answer of a
        service you publish to then goes there).  Returns once the transport has the
        message; ``force=True`` also flushes: it returns once the broker has everything
        published so far.  Raises the codec's ``TypeError``/``EncodeError`` and the
        transport's errors (bad subject, ``MaxPayloadError``, ``ConnectionClosedError``),
        and ``AppNotRunningError``.
        """
        core = self._core
        core.check_running("publish")
        if data_type is not None:
            codec_for(data_type)  # an unusable data type fails before any middleware runs
        send = core.middlewares.send_chain(PUBLISH, self._publish_now)
        await send(
            subject, message, reply_to=reply_to, force=force, data_type=data_type, headers=headers
        )

    async def _publish_now(
        self,
        subject: str,
        message: Any,
        *,
        reply_to: str | None = None,
        force: bool = False,
        data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The innermost step of :meth:`publish`, under the middlewares."""
        transport = self._core.check_running("publish")
        await transport.publish(
            subject, encode(message, data_type), reply=reply_to, headers=headers
        )
        if force:
            await transport.flush()

    publish_sync = blocking(publish, hand_over_in_loop=True)
    publish_from_another_thread = handed_over(publish, "publish_from_another_thread")

    # ------------------------------------------------------------------ request

    async def request(
        self,
        subject: str,
        message: Any = b"",
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the page's parameter
        data_type: DataType = None,
        response_data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request and return the reply body decoded as ``response_data_type``
        (default: any JSON value).

        ``timeout`` defaults to the app's ``request_timeout``.  Raises
        ``NoRespondersError`` (promptly) or ``RequestTimeoutError`` (a ``TimeoutError``),
        :class:`~micro.errors.ServiceError` when the reply is a service error reply,
        :class:`~micro.app.data_types.DecodeError` when the reply does not decode.
        """
        core = self._core
        core.check_running("request")
        if data_type is not None:
            codec_for(data_type)  # unusable data types fail before any middleware runs
        codec_for(response_data_type)
        send = core.middlewares.send_chain(REQUEST, self._request_now)
        return await send(
            subject,
            message,
            timeout=core.config.request_timeout if timeout is None else timeout,
            data_type=data_type,
            response_data_type=response_data_type,
            headers=headers,
        )

    async def _request_now(
        self,
        subject: str,
        message: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the page's parameter
        data_type: DataType = None,
        response_data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The innermost step of :meth:`request`, under the middlewares."""
        core = self._core
        transport = core.check_running("request")
        codec = codec_for(response_data_type)
        reply = await transport.request(
            subject,
            encode(message, data_type),
            headers=headers,
            timeout=core.config.request_timeout if timeout is None else timeout,
        )
        if reply.headers:
            error = ServiceError.from_headers(reply.headers, subject=subject, data=reply.data)
            if error is not None:
                raise error
        return codec.decode(reply.data)

    request_sync = blocking(request)
    request_from_another_thread = from_another_loop(request, "request_from_another_thread")

    # ------------------------------------------------------------------ subscriptions

    async def subscribe_new_subject(
        self,
        subject: str,
        callback: Callback,
        *,
        queue: Queue = SERVICE_QUEUE,
        data_type: DataType = None,
        name: str | None = None,
        max_concurrency: int | None = None,
        ordered: bool = False,
    ) -> str:
        """Add a listener while the app runs; returns its subscription id (ssid).

        Same options and behaviour as ``@app.listen``: a new endpoint of the app's service
        (in INFO/STATS when the app has a service name), live when this returns.  Raises
        what ``@app.listen`` raises for bad options, and ``AppNotRunningError`` once the
        app is stopping.
        """
        core = self._core
        core.check_running("subscribe_new_subject")
        stopping = f"app {core.label!r} is stopping: cannot subscribe"
        if core.life.phase is not Phase.RUNNING:
            raise AppNotRunningError(stopping)
        if not isinstance(subject, str):
            raise TypeError(
                f"subscribe_new_subject() takes one subject (a str), got {subject!r}; "
                "call it once per subject"
            )
        subjects, codec, own_bound = check_listener_options(
            subject, queue, data_type, name, max_concurrency, ordered
        )
        (spec,) = core.listener_specs(
            subjects, callback, queue=queue, codec=codec, name=name, max_concurrency=own_bound
        )
        try:
            await core.add_listener(spec)
        except ServiceStoppedError as exc:  # the stop began while it was subscribing
            raise AppNotRunningError(stopping) from exc
        return spec.ssid

    subscribe_new_subject_sync = blocking(subscribe_new_subject)

    async def unsubscribe_subject(self, subject: str) -> None:
        """Remove every listener subscribed to exactly ``subject``.

        Interest stops at once; messages already received are still handled, and this
        returns when they have been (unless called from one of the app's own listeners or
        tasks: then that finishes in the background).  Raises ``ValueError`` naming the
        subject when no listener has it.
        """
        listeners = self._core.listeners
        self._core.check_running("unsubscribe_subject")
        found = [ssid for ssid, endpoint in listeners.items() if endpoint.subject == subject]
        if not found:
            subjects = sorted({endpoint.subject for endpoint in listeners.values()})
            raise ValueError(f"no listener is subscribed to {subject!r}; subscribed: {subjects}")
        await self._remove(found)

    unsubscribe_subject_sync = blocking(unsubscribe_subject)

    async def unsubscribe_ssid(self, ssid: str) -> None:
        """Remove the listener with subscription id ``ssid`` (as :meth:`unsubscribe_subject`).

        Raises ``ValueError`` naming ``ssid`` when it is unknown (the page's example passes a
        subject: use :meth:`unsubscribe_subject` for that).
        """
        listeners = self._core.listeners
        self._core.check_running("unsubscribe_ssid")
        if not isinstance(ssid, str):
            raise TypeError(f"ssid must be a str (as subscribe_new_subject returns), got {ssid!r}")
        if ssid not in listeners:
            hint = ""
            if any(endpoint.subject == ssid for endpoint in listeners.values()):
                hint = f"; {ssid!r} is a subject: use unsubscribe_subject({ssid!r})"
            raise ValueError(
                f"unknown ssid {ssid!r}: known subscription ids are {sorted(listeners)}{hint}"
            )
        await self._remove([ssid])

    unsubscribe_ssid_sync = blocking(unsubscribe_ssid)

    async def _remove(self, ssids: list[str]) -> None:
        """Remove the listeners ``ssids`` from the service: each drains (messages already
        received are handled); wait for that unless inside the app (:data:`INSIDE_APP`)."""
        core = self._core
        service = core.service
        assert service is not None
        endpoints = [core.listeners.pop(ssid) for ssid in ssids]
        if INSIDE_APP.get() is core:
            for endpoint in endpoints:
                core.host.start_soon(_remove_endpoint_quietly, service, endpoint)
            return
        async with anyio.create_task_group() as group:
            for endpoint in endpoints:
                group.start_soon(service.remove_endpoint, endpoint)

    # ------------------------------------------------------------------ disconnect

    async def disconnect(self) -> None:
        """Stop the app (idempotent): cancel its tasks, drain its listeners (messages already
        received are handled), stop its service, close a connection it opened itself.

        Returns when that is done -- except when called from one of the app's own
        listeners or tasks, where it starts the stop and returns at once (the calling task
        is cancelled with the others).  ``run()``/``start()`` then return.
        """
        await self._core.disconnect()

    disconnect_sync = blocking_stop(disconnect)


async def _remove_endpoint_quietly(service: Service, endpoint: Endpoint) -> None:
    with contextlib.suppress(ValueError):  # the service stopped meanwhile and drained it
        await service.remove_endpoint(endpoint)
