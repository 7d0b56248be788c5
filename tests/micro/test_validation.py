"""Configuration validation (ADR-32, Design and Endpoints; at the validator level)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micro.errors import ValidationError
from micro.validation import (
    METADATA_MAX_BYTES,
    NAME_PATTERN,
    SEMVER_PATTERN,
    validate_endpoint_name,
    validate_endpoint_subject,
    validate_group_prefix,
    validate_metadata,
    validate_pending_limits,
    validate_queue_group,
    validate_service_name,
    validate_version,
)
from transports.subjects import is_valid_pattern, validate_queue

SCHEMAS = Path(__file__).resolve().parents[2] / "testing" / "conformance" / "schemas"


def _rejects(validator: Callable[[Any], object], value: object, *fragments: str) -> str:
    with pytest.raises(ValidationError) as caught:
        validator(value)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ----------------------------------------------------------------------- configuration rules


@pytest.mark.parametrize(
    ("case", "validator", "value"),
    [
        ("A1", validate_service_name, "test_service!"),
        ("A1", validate_service_name, "test.service@!"),
        ("A2", validate_service_name, ""),
        ("A2", validate_service_name, "/"),
        ("A2", validate_service_name, " "),
        ("A2", validate_service_name, ">"),
        ("A3", validate_version, "abc"),
        ("A3", validate_version, "a.b.c"),
        ("A3", validate_version, ""),
        ("A5", validate_version, "v1.2.3-hello"),
        ("A6", validate_endpoint_subject, "endpoint subject"),
        ("A7", validate_endpoint_name, ""),
        ("A7", validate_endpoint_name, "*"),
        ("A7", validate_endpoint_name, ">"),
        ("A7", validate_endpoint_name, " "),
        ("A7", validate_endpoint_name, "hello.world"),
        ("A8", validate_group_prefix, "a.>"),
        ("A8", validate_group_prefix, ">"),
        ("A9", validate_queue_group, ">.abc"),
        ("A9", validate_queue_group, "one two"),
        ("A9", validate_queue_group, " "),
        ("A9", validate_queue_group, "\t\n"),
    ],
)
def test_conformance_a_rejections(
    case: str, validator: Callable[[Any], object], value: str
) -> None:
    message = _rejects(validator, value, repr(value))
    assert ":" in message  # "<what> <value>: <rule>"


@pytest.mark.parametrize("version", ["0.1.0", "1.0.0-alpha.1+build.5"])
def test_conformance_a4_versions_accepted_verbatim(version: str) -> None:
    assert validate_version(version) is version


def test_name_messages_name_the_character_and_the_rule() -> None:
    message = _rejects(validate_service_name, "test_service!", "'test_service!'", NAME_PATTERN)
    assert "character '!'" in message
    _rejects(validate_service_name, "", "service name", "required")
    _rejects(validate_endpoint_name, "hello.world", "endpoint name", "character '.'")
    _rejects(validate_version, "v1.2.3-hello", "'v1.2.3-hello'", "semantic version")


# ----------------------------------------------------------------------------- names and versions


@pytest.mark.parametrize("name", ["svc", "tEsT", "a", "A-b_C-9", "0", "-", "_"])
def test_valid_names(name: str) -> None:
    assert validate_service_name(name) is name
    assert validate_endpoint_name(name) is name


@pytest.mark.parametrize("name", ["abc\n", "ab c", "é", "a$b", "a*", "a/b", "٣"])
def test_invalid_names(name: str) -> None:
    _rejects(validate_service_name, name, repr(name))
    _rejects(validate_endpoint_name, name, repr(name))


@pytest.mark.parametrize("bad", [None, 1, b"svc", ["svc"]])
def test_non_str_values_are_rejected_with_their_type(bad: object) -> None:
    for validator in (
        validate_service_name,
        validate_endpoint_name,
        validate_version,
        validate_endpoint_subject,
        validate_group_prefix,
        validate_queue_group,
    ):
        _rejects(validator, bad, "must be a str", type(bad).__name__)


@pytest.mark.parametrize(
    "version",
    [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0-x-y-z.--",
        "999999999.0.0",
    ],
)
def test_valid_versions(version: str) -> None:
    assert validate_version(version) is version


@pytest.mark.parametrize(
    "version",
    [
        "1",
        "1.2",
        "v1.2.3",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-01",
        "1.2.3.4",
        " 1.2.3",
        "1.2.3\n",
        "\u0661.\u0662.\u0663",  # Arabic-Indic digits
        "1.2.3-\u03b1",  # Greek alpha
    ],
)
def test_invalid_versions(version: str) -> None:
    _rejects(validate_version, version, repr(version))


def test_patterns_are_the_schema_patterns() -> None:
    for kind in ("ping", "info", "stats"):
        schema = json.loads((SCHEMAS / f"{kind}_response.json").read_text())
        assert schema["properties"]["version"]["pattern"] == SEMVER_PATTERN
        # The schema spells the name class differently (same set, see the property below).
        assert schema["properties"]["name"]["pattern"] == SCHEMA_NAME_PATTERN


SCHEMA_NAME_PATTERN = "^[a-zA-Z0-9_-]+$"
schema_name = re.compile(SCHEMA_NAME_PATTERN)


@given(st.text(max_size=6))
def test_name_rule_equals_schema_rule(text: str) -> None:
    ours = True
    try:
        validate_service_name(text)
    except ValidationError:
        ours = False
    assert ours == bool(schema_name.fullmatch(text))


# ----------------------------------------------------------------------------- subjects and groups


@pytest.mark.parametrize(
    "subject",
    [
        "foo",
        "foo.bar",
        "foo.bar.>",
        ">",
        "*",
        "one.*.three.add",
        "$SYS.SOMETHING.OR.OTHER.*",
        "tests.service.core.>",
        "a-b_c.D$9",
    ],
)
def test_valid_endpoint_subjects(subject: str) -> None:
    assert validate_endpoint_subject(subject) is subject


@pytest.mark.parametrize(
    ("subject", "rule"),
    [
        ("", "required"),
        ("endpoint subject", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\r\nb", "whitespace"),
        ("a..b", "empty tokens"),
        (".a", "empty tokens"),
        ("a.", "empty tokens"),
        ("foo.>.bar", "last token"),
        (">.abc", "last token"),
        ("fo*", "exactly '*' or '>'"),
        ("foo.b>", "exactly '*' or '>'"),
        ("**", "exactly '*' or '>'"),
    ],
)
def test_invalid_endpoint_subjects(subject: str, rule: str) -> None:
    _rejects(validate_endpoint_subject, subject, repr(subject), rule)


@pytest.mark.parametrize(
    "prefix", ["", "g1", "one.*.three", "$SYS.SOMETHING.OR.OTHER", "*", "$SRV.custom"]
)
def test_valid_group_prefixes(prefix: str) -> None:
    assert validate_group_prefix(prefix) is prefix


@pytest.mark.parametrize(
    ("prefix", "rule"),
    [
        ("a.>", "'>'"),
        (">", "'>'"),
        ("a>b", "exactly '*' or '>'"),
        ("a.b*", "exactly '*' or '>'"),
        ("a..b", "empty tokens"),
        (".a", "empty tokens"),
        ("a.", "empty tokens"),
        ("my group", "whitespace"),
    ],
)
def test_invalid_group_prefixes(prefix: str, rule: str) -> None:
    _rejects(validate_group_prefix, prefix, repr(prefix), rule)


@pytest.mark.parametrize("queue", ["q", "q-config", "q.v1", "custom_1", "$Q", "a..b"])
def test_valid_queue_groups(queue: str) -> None:
    assert validate_queue_group(queue) is queue


@pytest.mark.parametrize(
    ("queue", "rule"),
    [
        ("", "empty"),
        ("a*", "wildcard"),
        ("q>", "wildcard"),
        ("*", "wildcard"),
        ("a\u00a0b", "whitespace"),
    ],
)
def test_invalid_queue_groups(queue: str, rule: str) -> None:
    _rejects(validate_queue_group, queue, repr(queue), rule)


subject_chars = st.sampled_from(list("ab.*> \t$-_"))
candidates = st.lists(subject_chars, max_size=10).map("".join)


def _accepts(validator: Callable[[str], object], value: str) -> bool:
    try:
        validator(value)
    except ValidationError:
        return False
    return True


@given(candidates)
def test_accepted_endpoint_subjects_are_valid_transport_patterns(subject: str) -> None:
    if _accepts(validate_endpoint_subject, subject):
        assert is_valid_pattern(subject)


@given(candidates, candidates)
def test_group_prefix_plus_endpoint_subject_is_a_valid_endpoint_subject(
    prefix: str, subject: str
) -> None:
    if _accepts(validate_group_prefix, prefix) and _accepts(validate_endpoint_subject, subject):
        joined = f"{prefix}.{subject}" if prefix else subject
        assert validate_endpoint_subject(joined) == joined


@given(candidates)
def test_accepted_queue_groups_are_valid_transport_queues(queue: str) -> None:
    if _accepts(validate_queue_group, queue):
        assert validate_queue(queue) == queue


# ----------------------------------------------------------------------------- metadata


def test_metadata_none_gives_empty_dict() -> None:
    assert validate_metadata(None, "service metadata") == {}


def test_metadata_returns_an_independent_copy() -> None:
    original = {"basic": "metadata"}
    copy = validate_metadata(original, "service metadata")
    assert copy == original
    assert copy is not original
    original["later"] = "change"
    assert copy == {"basic": "metadata"}
    assert validate_metadata(MappingProxyType({"k": "v"}), "m") == {"k": "v"}
    assert type(validate_metadata(MappingProxyType({"k": "v"}), "m")) is dict


@pytest.mark.parametrize(
    ("metadata", "fragments"),
    [
        ({1: "v"}, ("endpoint 'add' metadata", "key 1", "must be a str", "int")),
        ({"k": 2}, ("endpoint 'add' metadata", "key 'k'", "must be a str", "int")),
        ({"k": None}, ("key 'k'", "NoneType")),
        ({"k": b"v"}, ("key 'k'", "bytes")),
        (["k", "v"], ("must be a mapping", "list")),
        ("k=v", ("must be a mapping", "str")),
        ({"k": "\ud800"}, ("entry 'k'", "UTF-8")),
    ],
)
def test_metadata_rejections_name_the_key(metadata: Any, fragments: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_metadata(metadata, "endpoint 'add' metadata")
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_metadata_size_limit_counts_utf8_bytes_of_keys_and_values() -> None:
    at_limit = {"k": "v" * (METADATA_MAX_BYTES - 1)}
    assert validate_metadata(at_limit, "m") == at_limit
    with pytest.raises(ValidationError, match=r"too large.*131073 bytes.*128 KiB"):
        validate_metadata({"k": "v" * METADATA_MAX_BYTES}, "m")
    two_byte = {"é": "é" * (METADATA_MAX_BYTES // 2 - 1)}  # 2 + 2 * (65535) = 131072
    assert validate_metadata(two_byte, "m") == two_byte
    with pytest.raises(ValidationError, match="too large"):
        validate_metadata({"é": "é" * (METADATA_MAX_BYTES // 2)}, "m")
    spread = {f"k{i:05d}": "x" * 10 for i in range(8192)}  # 8192 * 16 = 131072
    assert validate_metadata(spread, "m") == spread
    with pytest.raises(ValidationError, match="too large"):
        validate_metadata({**spread, "z": ""}, "m")


# ----------------------------------------------------------------------------- pending limits


@pytest.mark.parametrize(
    ("msgs", "size"), [(None, None), (1, None), (None, 1), (512 * 1024, 128 * 1024 * 1024)]
)
def test_valid_pending_limits(msgs: int | None, size: int | None) -> None:
    assert validate_pending_limits(msgs, size) == (msgs, size)


@pytest.mark.parametrize(
    ("msgs", "size", "fragment"),
    [
        (0, None, "pending messages limit 0"),
        (None, 0, "pending bytes limit 0"),
        (-1, None, "pending messages limit -1"),
        (True, None, "got bool True"),
        (1.5, None, "got float 1.5"),
        (None, "10", "got str '10'"),
    ],
)
def test_invalid_pending_limits(msgs: Any, size: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_pending_limits(msgs, size)
    assert fragment in str(caught.value)
    assert "positive int or None" in str(caught.value)
