"""Subject and header rules: the ``matches`` oracle, the validators, and both transports.

``matches`` is checked against a reference written differently (recursion over token
lists) and against the defining properties of ``>``, ``*`` and literal tokens.  The
validators must agree with ``is_valid_*`` and name the bad value.  Generated invalid
subjects and patterns must be rejected with ``BadSubjectError`` by the memory transport
and by the nats transport talking to a real nats-server (and the connection stays usable);
generated valid subjects, headers and payloads must arrive exactly as sent on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from testing import strategies as mst
from testing.conformance.backend import ConformanceBackend, MemoryBackend, NatsBackend
from transports.base import BadHeaderError, BadQueueError, BadSubjectError, Msg, Transport
from transports.subjects import (
    is_plain_subject,
    is_valid_pattern,
    is_valid_subject,
    make_msg,
    matches,
    validate_header_name,
    validate_pattern,
    validate_queue,
    validate_subject,
)

SMALL = ("a", "b", "c")
# Strings built from the characters the rules care about, so edge cases are common.
TRICKY_TEXT = st.text(alphabet=st.sampled_from("ab.*> \t\n\r$_é"), max_size=10)
ANY_TEXT = st.one_of(TRICKY_TEXT, st.text(max_size=12))


def reference_matches(pattern: str, subject: str) -> bool:
    """Token-list recursion: a second, independent statement of the matching rule."""

    def walk(pattern_tokens: list[str], subject_tokens: list[str]) -> bool:
        if not pattern_tokens:
            return not subject_tokens
        head, rest = pattern_tokens[0], pattern_tokens[1:]
        if head == ">":
            return len(subject_tokens) >= 1
        if not subject_tokens:
            return False
        return head in ("*", subject_tokens[0]) and walk(rest, subject_tokens[1:])

    return walk(pattern.split("."), subject.split("."))


# --------------------------------------------------------------------------- the oracle


@given(mst.patterns(tokens=SMALL), mst.subjects(tokens=SMALL))
@example("a.>", "a")
@example("a.>", "a.b")
@example(">", "a")
@example("*", "a.b")
@example("a.*", "a")
def test_matches_agrees_with_the_reference_on_a_small_alphabet(pattern: str, subject: str) -> None:
    assert matches(pattern, subject) is reference_matches(pattern, subject)


@given(mst.patterns(), mst.subjects())
def test_matches_agrees_with_the_reference_on_free_tokens(pattern: str, subject: str) -> None:
    assert matches(pattern, subject) is reference_matches(pattern, subject)


@given(
    st.lists(st.one_of(st.sampled_from(SMALL), st.just("*")), max_size=3),
    st.lists(st.sampled_from(SMALL), min_size=1, max_size=5),
)
def test_full_wildcard_matches_one_or_more_trailing_tokens(
    prefix: list[str], subject_tokens: list[str]
) -> None:
    pattern = ".".join([*prefix, ">"])
    subject = ".".join(subject_tokens)
    head_matches = len(subject_tokens) > len(prefix) and all(
        p in ("*", s) for p, s in zip(prefix, subject_tokens, strict=False)
    )
    assert matches(pattern, subject) is head_matches


@given(
    st.lists(mst.tokens(), min_size=1, max_size=5).flatmap(
        lambda tokens: st.tuples(
            st.just(tokens), st.lists(st.booleans(), min_size=len(tokens), max_size=len(tokens))
        )
    ),
    mst.tokens(),
)
def test_partial_wildcard_matches_exactly_one_token(
    tokens_and_mask: tuple[list[str], list[bool]], extra: str
) -> None:
    tokens, mask = tokens_and_mask
    pattern = ".".join("*" if star else token for token, star in zip(tokens, mask, strict=True))
    subject = ".".join(tokens)
    assert matches(pattern, subject)
    assert not matches(pattern, f"{subject}.{extra}")
    if len(tokens) > 1:
        assert not matches(pattern, ".".join(tokens[:-1]))


@given(mst.subjects(tokens=SMALL), mst.subjects(tokens=SMALL))
def test_a_literal_pattern_matches_only_itself(literal: str, subject: str) -> None:
    assert matches(literal, subject) is (literal == subject)
    assert matches(literal, literal)


# --------------------------------------------------------------------------- validators


@given(ANY_TEXT)
@example("")
@example("a.>.b")
@example("a..b")
@example(" a")
@example("a*")
def test_validators_agree_with_is_valid_and_name_the_value(text: str) -> None:
    for validate, is_valid in ((validate_subject, is_valid_subject),
                               (validate_pattern, is_valid_pattern)):  # fmt: skip
        if is_valid(text):
            assert validate(text) == text
        else:
            with pytest.raises(BadSubjectError) as caught:
                validate(text)
            assert isinstance(caught.value, ValueError)
            assert caught.value.subject == text
            assert repr(text) in str(caught.value)
            assert caught.value.rule


@given(ANY_TEXT)
def test_subjects_are_exactly_the_patterns_without_wildcards(text: str) -> None:
    has_wildcard_token = any(token in ("*", ">") for token in text.split("."))
    assert is_valid_subject(text) is (is_valid_pattern(text) and not has_wildcard_token)


def test_non_str_subjects_are_invalid() -> None:
    for value in (b"foo", None, 3):
        assert not is_valid_subject(value)  # type: ignore[arg-type]
        assert not is_valid_pattern(value)  # type: ignore[arg-type]
        with pytest.raises(BadSubjectError):
            validate_subject(value)  # type: ignore[arg-type]


@given(mst.subjects())
def test_generated_subjects_are_valid(subject: str) -> None:
    assert is_valid_subject(subject)
    assert is_valid_pattern(subject)


@given(mst.patterns())
def test_generated_patterns_are_valid(pattern: str) -> None:
    assert is_valid_pattern(pattern)


@given(mst.invalid_subjects())
def test_generated_invalid_subjects_are_invalid(subject: str) -> None:
    assert not is_valid_subject(subject)


@given(mst.invalid_patterns())
def test_generated_invalid_patterns_are_invalid(pattern: str) -> None:
    assert not is_valid_pattern(pattern)
    assert not is_valid_subject(pattern)


@given(st.one_of(mst.queue_names(), mst.invalid_queue_names(), ANY_TEXT))
def test_queue_rule(queue: str) -> None:
    if queue and not any(char.isspace() for char in queue):
        assert validate_queue(queue) == queue
    else:
        with pytest.raises(BadQueueError) as caught:
            validate_queue(queue)
        assert caught.value.queue == queue
        assert repr(queue) in str(caught.value)


@given(st.one_of(mst.header_names(), mst.invalid_header_names(), st.text(max_size=6)))
def test_header_name_rule(name: str) -> None:
    token_chars = set("!#$%&'*+-.^_`|~") | {chr(c) for c in range(0x30, 0x3A)}
    token_chars |= {chr(c) for c in range(0x41, 0x5B)} | {chr(c) for c in range(0x61, 0x7B)}
    if name and set(name) <= token_chars:
        assert validate_header_name(name) == name
    else:
        with pytest.raises(BadHeaderError) as caught:
            validate_header_name(name)
        assert caught.value.name == name


# --------------------------------------------------------------------------- both transports


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def memory_transport() -> AsyncIterator[Transport]:
    backend: ConformanceBackend = MemoryBackend()
    yield await backend.connect()
    await backend.aclose()


@pytest.fixture
async def nats_transport(micro_nats_server: Any) -> AsyncIterator[Transport]:
    backend: ConformanceBackend = NatsBackend(micro_nats_server.url)
    yield await backend.connect()
    await backend.aclose()


async def _assert_subject_rejected(transport: Transport, subject: str) -> None:
    with pytest.raises(BadSubjectError) as caught:
        await transport.publish(subject, b"x")
    assert caught.value.subject == subject
    with pytest.raises(BadSubjectError):
        await transport.publish("ok", b"x", reply=subject)
    with pytest.raises(BadSubjectError):
        await transport.request(subject, b"x", timeout=1.0)
    await transport.flush()
    assert transport.is_connected


async def _assert_pattern_rejected(transport: Transport, pattern: str) -> None:
    for queue in (None, "q"):
        with pytest.raises(BadSubjectError) as caught:
            await transport.subscribe(pattern, queue=queue)
        assert caught.value.subject == pattern
    await transport.flush()
    assert transport.is_connected


@pytest.mark.anyio
@given(subject=mst.invalid_subjects())
async def test_memory_rejects_invalid_subjects(memory_transport: Transport, subject: str) -> None:
    await _assert_subject_rejected(memory_transport, subject)


@pytest.mark.anyio
@given(pattern=mst.invalid_patterns())
async def test_memory_rejects_invalid_patterns(memory_transport: Transport, pattern: str) -> None:
    await _assert_pattern_rejected(memory_transport, pattern)


@pytest.mark.anyio
@given(subject=mst.invalid_subjects())
async def test_nats_rejects_invalid_subjects(nats_transport: Transport, subject: str) -> None:
    await _assert_subject_rejected(nats_transport, subject)


@pytest.mark.anyio
@given(pattern=mst.invalid_patterns())
async def test_nats_rejects_invalid_patterns(nats_transport: Transport, pattern: str) -> None:
    await _assert_pattern_rejected(nats_transport, pattern)


async def _assert_round_trip(
    transport: Transport, subject: str, headers: dict[str, str], payload: bytes
) -> None:
    sub = await transport.subscribe(subject)
    await transport.publish(subject, payload, headers=headers)
    msg = await sub.next_msg(timeout=10.0)
    await sub.unsubscribe()
    assert (msg.subject, msg.data) == (subject, payload)
    assert msg.headers is not None
    assert dict(msg.headers) == headers


@pytest.mark.anyio
@given(subject=mst.subjects(), headers=mst.headers(), payload=mst.payloads())
async def test_memory_round_trips_generated_messages(
    memory_transport: Transport, subject: str, headers: dict[str, str], payload: bytes
) -> None:
    await _assert_round_trip(memory_transport, subject, headers, payload)


@pytest.mark.anyio
@given(subject=mst.subjects(), headers=mst.headers(), payload=mst.payloads())
async def test_nats_round_trips_generated_messages(
    nats_transport: Transport, subject: str, headers: dict[str, str], payload: bytes
) -> None:
    await _assert_round_trip(nats_transport, subject, headers, payload)


# ---------------------------------------------------------------------- fast paths stay exact


def test_msg_has_the_fields_the_fast_constructor_sets() -> None:
    assert [field.name for field in fields(Msg)] == ["subject", "data", "headers", "reply"]
    assert not hasattr(Msg, "__post_init__")
    made = make_msg("s", b"d", {"K": "v"}, "r")
    assert made == Msg("s", b"d", {"K": "v"}, "r")
    assert type(made) is Msg


@given(st.text(alphabet=st.sampled_from("ab.*> \t\u00e9\u00a0\x00"), max_size=8))
@example("a.b")
@example("a..b")
@example("a.>")
def test_the_fast_subject_check_never_accepts_an_invalid_subject(subject: str) -> None:
    """``check_subject`` skips ``validate_subject`` for what ``is_plain_subject`` accepts."""
    if is_plain_subject(subject):
        assert is_valid_subject(subject)
