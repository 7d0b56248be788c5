"""Hypothesis strategies: subjects, patterns, queue groups, headers, payloads, service names,
versions, metadata and routing programs.

Every generator of *valid* values produces values that ``transports.subjects`` accepts and
that a real nats-server routes; every generator of *invalid* values produces values that
``transports.subjects`` rejects.  Generators that build subjects take a ``tokens`` alphabet:
pass a small one (``("a", "b", "c")``) so that generated subscriptions and publishes
actually match each other; the default draws arbitrary printable tokens.

Typical use::

    from hypothesis import given
    from testing import strategies as mst

    @given(mst.patterns(tokens=("a", "b")), mst.subjects(tokens=("a", "b")))
    def test_something(pattern: str, subject: str) -> None: ...
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from .differential import (
    Drain,
    Publish,
    Request,
    RoutingProgram,
    Step,
    Subscribe,
    Unsubscribe,
)

__all__ = [
    "NAME_CHARS",
    "SMALL_TOKENS",
    "WHITESPACE",
    "endpoint_names",
    "header_names",
    "header_values",
    "headers",
    "invalid_header_names",
    "invalid_metadata",
    "invalid_names",
    "invalid_patterns",
    "invalid_queue_names",
    "invalid_subjects",
    "invalid_versions",
    "metadata",
    "patterns",
    "payloads",
    "queue_names",
    "routing_programs",
    "service_names",
    "subjects",
    "tokens",
    "versions",
]

SMALL_TOKENS: tuple[str, ...] = ("a", "b", "c")
"""A token alphabet small enough that random patterns and subjects often match."""

WHITESPACE: tuple[str, ...] = (" ", "\t", "\r", "\n", "\f", "\v")
"""The whitespace characters the subject rules name explicitly."""

_HEADER_TOKEN_CHARS = (
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _spliced(valid: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A ``valid`` value with one ``bad`` piece inserted at any position: how every
    ``invalid_*`` strategy below breaks a value by one character."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = draw(valid)
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(bad) + text[at:]

    return build()


def _free_token() -> st.SearchStrategy[str]:
    """One literal token: printable, no whitespace, no ``.``, ``*`` or ``>``."""
    return st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs", "Cc", "Z"),
            blacklist_characters=".*>",
        ),
        min_size=1,
        max_size=8,
    ).filter(lambda token: not any(char.isspace() for char in token))


def tokens(alphabet: Sequence[str] | None = None) -> st.SearchStrategy[str]:
    """One literal subject token, drawn from ``alphabet`` when given."""
    if alphabet is None:
        return _free_token()
    if not alphabet:
        raise ValueError("tokens alphabet must not be empty")
    return st.sampled_from(tuple(alphabet))


def subjects(
    *, tokens: Sequence[str] | None = None, min_tokens: int = 1, max_tokens: int = 4
) -> st.SearchStrategy[str]:
    """A valid literal subject (publishable): ``min_tokens``..``max_tokens`` tokens."""
    return _token_lists(_token_strategy(tokens), min_tokens, max_tokens).map(".".join)


def patterns(
    *,
    tokens: Sequence[str] | None = None,
    min_tokens: int = 1,
    max_tokens: int = 4,
    wildcards: bool = True,
) -> st.SearchStrategy[str]:
    """A valid subscription pattern; with ``wildcards`` some tokens are ``*`` and the last
    may be ``>``."""
    if not wildcards:
        return subjects(tokens=tokens, min_tokens=min_tokens, max_tokens=max_tokens)
    token_lists = _token_lists(
        st.one_of(_token_strategy(tokens), st.just("*")), min_tokens, max_tokens
    )

    @st.composite
    def build(draw: st.DrawFn) -> str:
        parts = draw(token_lists)
        if draw(st.booleans()):
            parts[-1] = ">"
        return ".".join(parts)

    return build()


def _token_strategy(alphabet: Sequence[str] | None) -> st.SearchStrategy[str]:
    """:func:`tokens`, for the functions whose parameter ``tokens`` hides it."""
    return tokens(alphabet)


def _token_lists(
    token: st.SearchStrategy[str], min_tokens: int, max_tokens: int
) -> st.SearchStrategy[list[str]]:
    """Lists of ``min_tokens``..``max_tokens`` tokens (``ValueError`` unless 1 <= min <= max)."""
    if not 1 <= min_tokens <= max_tokens:
        raise ValueError(f"need 1 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
    return st.lists(token, min_size=min_tokens, max_size=max_tokens)


@st.composite
def _broken_subject(draw: st.DrawFn, *, for_publish: bool) -> str:
    base = draw(st.lists(_free_token(), min_size=1, max_size=3))
    kinds = ["empty", "whitespace", "empty_token", "partial_wildcard", "inner_full_wildcard"]
    if for_publish:
        kinds.append("wildcard")
    kind = draw(st.sampled_from(kinds))
    if kind == "empty":
        return ""
    if kind == "whitespace":
        return draw(_spliced(st.just(".".join(base)), st.sampled_from(WHITESPACE)))
    if kind == "empty_token":
        at = draw(st.integers(0, len(base)))
        return ".".join([*base[:at], "", *base[at:]])
    if kind == "partial_wildcard":
        at = draw(st.integers(0, len(base) - 1))
        wild = draw(st.sampled_from(("*", ">")))
        token = base[at]
        cut = draw(st.integers(0, len(token)))
        base[at] = token[:cut] + wild + token[cut:]
        return ".".join(base)
    if kind == "inner_full_wildcard":
        at = draw(st.integers(0, len(base) - 1))
        return ".".join([*base[:at], ">", *base[at:]])
    at = draw(st.integers(0, len(base)))
    return ".".join([*base[:at], draw(st.sampled_from(("*", ">"))), *base[at:]])


def invalid_subjects() -> st.SearchStrategy[str]:
    """A string that may not be published to: empty, whitespace, an empty token, or any
    wildcard."""
    return _broken_subject(for_publish=True)


def invalid_patterns() -> st.SearchStrategy[str]:
    """A string that may not be subscribed to: empty, whitespace, an empty token, a token
    mixing ``*``/``>`` with other characters, or ``>`` before the last token."""
    return _broken_subject(for_publish=False)


def queue_names(names: Sequence[str] | None = None) -> st.SearchStrategy[str]:
    """A valid queue group name, drawn from ``names`` when given."""
    if names is not None:
        if not names:
            raise ValueError("queue names must not be empty")
        return st.sampled_from(tuple(names))
    return st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1, max_size=12
    ).filter(lambda name: not any(char.isspace() for char in name))


def invalid_queue_names() -> st.SearchStrategy[str]:
    """An empty queue group name or one containing whitespace."""
    return st.one_of(st.just(""), _spliced(queue_names(), st.sampled_from(WHITESPACE)))


def header_names() -> st.SearchStrategy[str]:
    """A valid header name (an RFC 7230 token), mixed case."""
    return st.text(alphabet=_HEADER_TOKEN_CHARS, min_size=1, max_size=16)


def invalid_header_names() -> st.SearchStrategy[str]:
    """An empty header name or one containing a non-token character."""
    bad = st.sampled_from((" ", ":", "\t", "\r", "\n", "(", '"', "é", "\x00", "/"))
    return st.one_of(st.just(""), _spliced(header_names(), bad))


def header_values() -> st.SearchStrategy[str]:
    """A header value that survives the wire exactly: printable unicode, no CR/LF, no
    leading or trailing whitespace (the NATS header format trims it)."""
    return st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=24
    ).filter(lambda value: value == value.strip())


def headers(*, max_size: int = 4) -> st.SearchStrategy[dict[str, str]]:
    """A non-empty header mapping with names that differ case-insensitively.

    (NATS header names are case-sensitive on the wire, but names equal up to case are
    a source of client-specific behaviour, so this strategy avoids them.)
    """
    return st.dictionaries(header_names(), header_values(), min_size=1, max_size=max_size).filter(
        lambda mapping: len({name.lower() for name in mapping}) == len(mapping)
    )


def payloads(*, max_size: int = 256) -> st.SearchStrategy[bytes]:
    """A payload, empty or binary."""
    return st.binary(min_size=0, max_size=max_size)


def routing_programs(
    *,
    tokens: Sequence[str] = ("a", "b"),
    queues: Sequence[str] = ("q1", "q2"),
    max_tokens: int = 3,
    max_steps: int = 30,
    requests: bool = True,
    drains: bool = True,
) -> st.SearchStrategy[RoutingProgram]:
    """A routing program for :func:`testing.differential.run_program`.

    Subscriptions (plain or in one of ``queues``, patterns over ``tokens`` with
    wildcards), publishes and (with ``requests``) requests to subjects over ``tokens``, and
    unsubscribes and (with ``drains``) drains of earlier subscriptions, interleaved.  Their
    indices always refer to an earlier ``Subscribe`` step (possibly already ended: that must
    be a no-op).  Shrinks towards short programs of publishes.
    """
    pattern = patterns(tokens=tokens, max_tokens=max_tokens)
    subject = subjects(tokens=tokens, max_tokens=max_tokens)
    queue = st.one_of(st.none(), st.sampled_from(tuple(queues)))
    sending = ["publish", "publish", "subscribe"] + (["request"] if requests else [])
    ending = ["unsubscribe"] + (["drain"] if drains else [])

    @st.composite
    def build(draw: st.DrawFn) -> RoutingProgram:
        steps: list[Step] = []
        subscribed = 0
        count = draw(st.integers(1, max_steps))
        for _ in range(count):
            kind = draw(st.sampled_from(sending + ending if subscribed else sending))
            if kind == "subscribe":
                steps.append(Subscribe(draw(pattern), draw(queue)))
                subscribed += 1
            elif kind == "publish":
                steps.append(Publish(draw(subject)))
            elif kind == "request":
                steps.append(Request(draw(subject)))
            elif kind == "unsubscribe":
                steps.append(Unsubscribe(draw(st.integers(0, subscribed - 1))))
            else:
                steps.append(Drain(draw(st.integers(0, subscribed - 1))))
        return RoutingProgram(tuple(steps))

    return build()


# --------------------------------------------------------------------------- services

NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
"""The characters service and endpoint names may use (``^[A-Za-z0-9\\-_]+$``)."""


def service_names(*, max_size: int = 24) -> st.SearchStrategy[str]:
    """A valid service name (``micro.validation.validate_service_name`` accepts it)."""
    return st.text(alphabet=NAME_CHARS, min_size=1, max_size=max_size)


def endpoint_names(*, max_size: int = 24) -> st.SearchStrategy[str]:
    """A valid endpoint name (same rule as service names)."""
    return service_names(max_size=max_size)


def invalid_names() -> st.SearchStrategy[str]:
    """A string that is not a valid service or endpoint name: empty, or with a character
    outside ``[A-Za-z0-9-_]`` (a dot, a space, a wildcard, non-ASCII...)."""
    bad = st.one_of(
        st.sampled_from((".", " ", "*", ">", "/", "é", "\t", "\n", "$", ":")),
        st.characters(blacklist_characters=NAME_CHARS, blacklist_categories=["Cs"]),
    )
    return st.one_of(st.just(""), _spliced(service_names(max_size=12), bad))


_NUMBER = st.integers(0, 10**6).map(str)
_ALNUM_DASH = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"


def _prerelease_identifier() -> st.SearchStrategy[str]:
    alphanumeric = st.text(alphabet=_ALNUM_DASH, min_size=1, max_size=8).filter(
        lambda text: not text.isdigit()
    )
    return st.one_of(_NUMBER, alphanumeric)


def versions() -> st.SearchStrategy[str]:
    """A valid semantic version (semver.org): ``MAJOR.MINOR.PATCH`` with optional
    pre-release (``-alpha.1``) and build (``+build.5``) parts."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        version = ".".join(draw(_NUMBER) for _ in range(3))
        if draw(st.booleans()):
            parts = draw(st.lists(_prerelease_identifier(), min_size=1, max_size=3))
            version += "-" + ".".join(parts)
        if draw(st.booleans()):
            parts = draw(
                st.lists(
                    st.text(alphabet=_ALNUM_DASH, min_size=1, max_size=8), min_size=1, max_size=3
                )
            )
            version += "+" + ".".join(parts)
        return version

    return build()


def invalid_versions() -> st.SearchStrategy[str]:
    """A string that is not a semantic version: empty, a ``v`` prefix, too few or too many
    numbers, a leading zero, an empty or bad pre-release/build part, whitespace."""

    @st.composite
    def broken(draw: st.DrawFn) -> str:
        good = draw(versions())
        core = ".".join(draw(_NUMBER) for _ in range(3))
        kind = draw(
            st.sampled_from(
                ["v", "two", "four", "zero", "dash", "plus", "prezero", "space", "badchar"]
            )
        )
        if kind == "v":
            return "v" + good
        if kind == "two":
            return ".".join(core.split(".")[:2])
        if kind == "four":
            return core + "." + draw(_NUMBER)
        if kind == "zero":
            _, rest = core.split(".", 1)
            return f"0{draw(st.integers(0, 99))}.{rest}"
        if kind == "dash":
            return core + "-"
        if kind == "plus":
            return core + "+"
        if kind == "prezero":
            return f"{core}-0{draw(st.integers(0, 99))}"
        if kind == "space":
            return draw(_spliced(st.just(good), st.sampled_from(WHITESPACE)))
        return core + "-" + draw(st.sampled_from(("a_b", "é", "a..b", "a/b")))

    return st.one_of(st.just(""), broken())


def metadata(*, max_size: int = 4) -> st.SearchStrategy[dict[str, str]]:
    """Valid service or endpoint metadata: str keys to str values (any printable text)."""
    text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=16)
    return st.dictionaries(text, text, max_size=max_size)


def invalid_metadata() -> st.SearchStrategy[object]:
    """Metadata ``micro.validation.validate_metadata`` rejects: not a mapping, a non-str key
    or value, or more than 128 KiB of keys plus values."""
    bad_value: st.SearchStrategy[object] = st.one_of(
        st.integers(), st.none(), st.binary(max_size=4), st.lists(st.text(max_size=2))
    )
    return st.one_of(
        st.lists(st.tuples(st.text(max_size=4), st.text(max_size=4)), min_size=1, max_size=2),
        st.builds(lambda key, value: {key: value}, st.text(max_size=4), bad_value),
        st.builds(lambda key: {key: "v"}, st.integers()),
        st.just({"big": "x" * (128 * 1024)}),
    )
