"""The calls of the App Functions page, shared by ``App`` and its ``app.nats`` facade.

Each call exists in up to three forms that are one implementation:

* ``await app.X(...)`` -- the call itself, in the app's event loop;
* ``app.X_sync(...)`` -- a plain blocking function: ``await app.X(...)`` run in the app's
  loop through the app's one blocking portal (see ``micro.app.sync``); usable from any
  thread except the app loop's own (there it raises ``SyncCallInLoopError``).  On an app
  that has not started yet, the first blocking call starts it in a thread of its own;
* ``app.X_from_another_thread(...)`` (``publish``, ``request``) -- the same blocking call
  under the page's other name.

``app.nats`` offers every one of these names too: the page uses both spellings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from micro.app import blocking, operations
from micro.app.data_types import DataType
from micro.app.listeners import INSIDE_APP
from micro.app.message import Message

if TYPE_CHECKING:
    from micro.app.app import App
    from micro.app.core import AppCore

__all__ = ["Calls", "NatsFacade"]

Callback = Callable[[Message], Any]


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
        service you publish to then goes there).  ``force=True`` also flushes: it returns
        once the broker has everything published so far.  Raises the codec's
        ``TypeError``/``EncodeError`` and the transport's errors (bad subject,
        ``MaxPayloadError``, ``ConnectionClosedError``), and ``AppNotRunningError``.
        """
        await operations.publish(self._core, subject, message, reply_to, force, data_type, headers)

    def publish_sync(
        self,
        subject: str,
        message: Any = b"",
        *,
        reply_to: str | None = None,
        force: bool = False,
        data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Blocking :meth:`publish`: returns once the transport has the message (flushed to
        the broker with ``force=True``); its errors are raised here."""
        work = partial(
            operations.publish, self._core, subject, message, reply_to, force, data_type, headers
        )
        blocking.call_sync(self._core, "publish_sync", "publish", work)

    def publish_from_another_thread(
        self,
        subject: str,
        message: Any = b"",
        *,
        reply_to: str | None = None,
        force: bool = False,
        data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`publish_sync` under the page's name for calls from other threads."""
        work = partial(
            operations.publish, self._core, subject, message, reply_to, force, data_type, headers
        )
        blocking.call_sync(self._core, "publish_from_another_thread", "publish", work)

    # ------------------------------------------------------------------ request

    async def request(
        self,
        subject: str,
        message: Any = b"",
        *,
        timeout: float | None = None,
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
        return await operations.request(
            self._core, subject, message, timeout, data_type, response_data_type, headers
        )

    def request_sync(
        self,
        subject: str,
        message: Any = b"",
        *,
        timeout: float | None = None,
        data_type: DataType = None,
        response_data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Blocking :meth:`request` (a plain function: do not ``await`` its result)."""
        work = partial(
            operations.request,
            self._core,
            subject,
            message,
            timeout,
            data_type,
            response_data_type,
            headers,
        )
        return blocking.call_sync(self._core, "request_sync", "request", work)

    def request_from_another_thread(
        self,
        subject: str,
        message: Any = b"",
        *,
        timeout: float | None = None,
        data_type: DataType = None,
        response_data_type: DataType = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """:meth:`request_sync` under the page's name for calls from other threads
        (a plain blocking function, despite the page's ``await``)."""
        work = partial(
            operations.request,
            self._core,
            subject,
            message,
            timeout,
            data_type,
            response_data_type,
            headers,
        )
        return blocking.call_sync(self._core, "request_from_another_thread", "request", work)

    # ------------------------------------------------------------------ subscriptions

    async def subscribe_new_subject(
        self,
        subject: str,
        callback: Callback,
        *,
        queue: str | None = None,
        data_type: DataType = None,
        name: str | None = None,
    ) -> str:
        """Add a listener while the app runs; returns its subscription id (ssid).

        Same options and behaviour as ``@app.listen``; the subscription is live when this
        returns.  On a service app it is also a new endpoint (in INFO/STATS).
        """
        return await operations.subscribe(self._core, subject, callback, queue, data_type, name)

    def subscribe_new_subject_sync(
        self,
        subject: str,
        callback: Callback,
        *,
        queue: str | None = None,
        data_type: DataType = None,
        name: str | None = None,
    ) -> str:
        """Blocking :meth:`subscribe_new_subject`; returns the ssid."""
        work = partial(operations.subscribe, self._core, subject, callback, queue, data_type, name)
        return blocking.call_sync(
            self._core, "subscribe_new_subject_sync", "subscribe_new_subject", work
        )

    async def unsubscribe_subject(self, subject: str) -> None:
        """Remove every listener subscribed to exactly ``subject``.

        Interest stops at once; messages already received are still handled, and this
        returns when they have been (unless called from one of the app's own listeners or
        tasks: then that finishes in the background).  Raises ``ValueError`` naming the
        subject when no listener has it.
        """
        wait = INSIDE_APP.get() is not self._core
        await operations.unsubscribe_subject(self._core, subject, wait)

    def unsubscribe_subject_sync(self, subject: str) -> None:
        """Blocking :meth:`unsubscribe_subject`."""
        wait = INSIDE_APP.get() is not self._core
        work = partial(operations.unsubscribe_subject, self._core, subject, wait)
        blocking.call_sync(self._core, "unsubscribe_subject_sync", "unsubscribe_subject", work)

    async def unsubscribe_ssid(self, ssid: str) -> None:
        """Remove the listener with subscription id ``ssid`` (as :meth:`unsubscribe_subject`).

        Raises ``ValueError`` naming ``ssid`` when it is unknown (the page's example passes a
        subject: use :meth:`unsubscribe_subject` for that).
        """
        wait = INSIDE_APP.get() is not self._core
        await operations.unsubscribe_ssid(self._core, ssid, wait)

    def unsubscribe_ssid_sync(self, ssid: str) -> None:
        """Blocking :meth:`unsubscribe_ssid`."""
        wait = INSIDE_APP.get() is not self._core
        work = partial(operations.unsubscribe_ssid, self._core, ssid, wait)
        blocking.call_sync(self._core, "unsubscribe_ssid_sync", "unsubscribe_ssid", work)

    # ------------------------------------------------------------------ disconnect

    async def disconnect(self) -> None:
        """Stop the app (idempotent): cancel its tasks, drain its listeners (messages already
        received are handled), stop its service, close a connection it opened itself.

        Returns when that is done -- except when called from one of the app's own
        listeners or tasks, where it starts the stop and returns at once (the calling task
        is cancelled with the others).  ``run()``/``start()`` then return.
        """
        await self._core.disconnect(wait=INSIDE_APP.get() is not self._core)

    def disconnect_sync(self) -> None:
        """Blocking :meth:`disconnect`; also ends the app's own thread, if it has one."""
        blocking.disconnect_sync(self._core)


class NatsFacade(Calls):
    """``app.nats``: the same calls under the page's other spelling (``app.nats.publish``,
    ``app.nats.publish_from_another_thread``, ...)."""

    def __init__(self, app: App, core: AppCore) -> None:
        self._app = app
        self._core = core

    @property
    def app(self) -> App:
        return self._app

    def __repr__(self) -> str:
        return f"<app.nats of {self._app!r}>"
