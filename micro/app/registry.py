"""What the decorators record: validated listener and task specifications.

Everything is checked when the decorator (or ``subscribe_new_subject``) is called, so a
bad subject, queue group, data type, interval or callback fails at once with a message
naming the value and the rule -- not later, when the app starts.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from micro.app.data_types import Codec, DataType, codec_for
from micro.app.message import Message
from micro.request import call_in_thread, is_async_callable
from micro.validation import validate_endpoint_name
from transports.subjects import validate_pattern, validate_queue

__all__ = [
    "ON_ERROR_CHOICES",
    "SERVICE_QUEUE",
    "ListenerSpec",
    "Queue",
    "OnError",
    "TaskSpec",
    "call_user",
    "check_listener_options",
    "check_task_options",
    "endpoint_name",
    "is_async_callable",
    "make_listener_spec",
    "make_task_spec",
]


class _QueueDefault(enum.Enum):
    SERVICE_QUEUE = "the service's queue group"

    def __repr__(self) -> str:
        return "SERVICE_QUEUE"


SERVICE_QUEUE = _QueueDefault.SERVICE_QUEUE
"""The default ``queue`` of a listener: the queue group of the app's service (ADR-32's
``q`` unless changed) when the app has a ``service_name``, so replicas share the work like
any service's endpoints; no queue group otherwise (every app instance gets every message,
as in Panini).  ``queue=None`` always means a plain subscription, ``queue="name"`` that
queue group."""

Queue = str | None | _QueueDefault
"""What ``queue=`` takes: a queue group name, ``None`` (none) or :data:`SERVICE_QUEUE`."""

OnError = Literal["log", "stop"]
ON_ERROR_CHOICES: tuple[str, ...] = ("log", "stop")

_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_-]", re.ASCII)


async def call_user(func: Callable[..., Any], is_async: bool, *args: Any) -> Any:
    """Run a user callable: a coroutine function (``is_async``) is awaited in the event
    loop; a plain function goes through :func:`micro.request.call_in_thread` (a worker
    thread, so it may use the app's blocking ``*_sync`` calls; an awaitable it returns is
    awaited in the loop), as plain ``def`` handlers do."""
    if is_async:
        return await func(*args)
    return await call_in_thread(func, *args)


def _callable_name(func: Callable[..., Any]) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


def endpoint_name(func: Callable[..., Any]) -> str:
    """A valid endpoint name from a callable's ``__name__`` (invalid characters -> ``_``)."""
    raw = str(getattr(func, "__name__", "") or "listener")
    return _NOT_NAME_CHAR.sub("_", raw).strip("_") or "listener"


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A listener: ``callback(msg)`` for every message on ``subject``.

    ``name`` is its endpoint name; ``ssid`` its subscription id.
    """

    ssid: str
    subject: str
    callback: Callable[[Message], Any]
    queue: Queue
    codec: Codec
    name: str
    is_async: bool
    max_concurrency: int | None = None
    """At most this many of its messages at once (``None``: the app's ``max_concurrency``)."""

    @property
    def description(self) -> str:
        return f"listener {_callable_name(self.callback)} on {self.subject!r} (ssid {self.ssid})"


def check_listener_options(
    subject: str | Sequence[str],
    queue: Queue,
    data_type: DataType,
    name: str | None,
    max_concurrency: int | None = None,
    ordered: bool = False,
) -> tuple[list[str], Codec, int | None]:
    """Validate what a listener is given besides its callback.

    Returns its subjects (one, or each of a list/tuple), its codec and its own concurrency
    bound (``1`` when ``ordered``; ``None``: the app's).  Raises ``BadSubjectError`` /
    ``BadQueueError`` (transport subject rules; wildcards allowed), ``TypeError`` for a
    callable passed as the subject or an unsupported data type, ``ValueError`` for an
    empty subject list, a bad ``max_concurrency`` or one that contradicts ``ordered``, and
    ``ValidationError`` for a bad endpoint ``name``.
    """
    if callable(subject) and not isinstance(subject, str):
        raise TypeError(
            "listen() needs the subject: write @app.listen(subject='a.b') (with parentheses), "
            f"got the callable {subject!r}"
        )
    subjects = [subject] if isinstance(subject, str) else _subject_list(subject)
    for each in subjects:
        validate_pattern(each)
    if not isinstance(queue, _QueueDefault):
        validate_queue(queue)
    codec = codec_for(data_type)
    if name is not None:
        validate_endpoint_name(name)
    return subjects, codec, _concurrency(max_concurrency, ordered)


def _subject_list(subject: object) -> list[str]:
    if not isinstance(subject, (list, tuple)):
        raise TypeError(
            f"listen() subject must be a str or a list of str, got {type(subject).__name__}"
        )
    if not subject:
        raise ValueError("listen() got an empty list of subjects: give at least one")
    if len(set(subject)) != len(subject):
        raise ValueError(f"listen() got a subject twice in {list(subject)!r}")
    return list(subject)


def _concurrency(max_concurrency: int | None, ordered: bool) -> int | None:
    if not isinstance(ordered, bool):
        raise TypeError(f"ordered must be True or False, got {ordered!r}")
    if max_concurrency is None:
        return 1 if ordered else None
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError(f"max_concurrency must be an int >= 1 or None, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise ValueError(f"invalid max_concurrency {max_concurrency!r}: must be >= 1")
    if ordered and max_concurrency != 1:
        raise ValueError(
            f"ordered=True handles one message at a time; it contradicts "
            f"max_concurrency={max_concurrency} (give one or the other)"
        )
    return max_concurrency


def make_listener_spec(
    new_ssid: Callable[[], str],
    subject: str,
    callback: Callable[[Message], Any],
    *,
    queue: Queue,
    codec: Codec,
    name: str | None,
    max_concurrency: int | None = None,
) -> ListenerSpec:
    """Record a listener whose options passed :func:`check_listener_options`.

    ``new_ssid()`` gives its id once the callback is found callable (``TypeError``
    otherwise).  ``name`` defaults to the callback's ``__name__`` made a valid endpoint name.
    """
    if not callable(callback):
        raise TypeError(f"listener callback for {subject!r} must be callable, got {callback!r}")
    return ListenerSpec(
        ssid=new_ssid(),
        subject=subject,
        callback=callback,
        queue=queue,
        codec=codec,
        name=endpoint_name(callback) if name is None else name,
        is_async=is_async_callable(callback),
        max_concurrency=max_concurrency,
    )


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task: ``func()`` once at start, or every ``interval`` seconds (``None``: once).

    ``on_error`` is the failure policy: ``"log"`` (log with traceback and go on with the
    next run) or ``"stop"`` (log, then stop the app with the error).
    """

    func: Callable[[], Any]
    interval: float | None
    on_error: OnError
    name: str
    is_async: bool


def check_task_options(interval: object, on_error: OnError, name: str | None) -> float | None:
    """Validate what a task is given besides its function; returns ``interval`` in seconds
    (``None``: run once).  ``TypeError``/``ValueError`` name the bad value."""
    if on_error != "log" and on_error != "stop":
        raise ValueError(f"invalid on_error {on_error!r}: must be one of {ON_ERROR_CHOICES}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {type(name).__name__}")
    if interval is None:
        return None
    if callable(interval):
        raise TypeError(
            "task() takes its options, not the function: write @app.task() or "
            "@app.task(interval=2) (with parentheses)"
        )
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(
            f"task interval must be an int or float number of seconds, got {interval!r}"
        )
    seconds = float(interval)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"invalid task interval {interval!r}: must be a finite number > 0")
    return seconds


def make_task_spec(
    func: Callable[[], Any], *, interval: float | None, on_error: OnError, name: str | None
) -> TaskSpec:
    """Record a task whose options passed :func:`check_task_options`; ``TypeError`` when
    ``func`` is not callable."""
    if not callable(func):
        raise TypeError(f"a task must be a callable, got {func!r}")
    return TaskSpec(
        func=func,
        interval=interval,
        on_error=on_error,
        name=name or _callable_name(func),
        is_async=is_async_callable(func),
    )
