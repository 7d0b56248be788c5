"""Control subjects (ADR-32, Discovery and Status)."""

from __future__ import annotations

import pytest

from micro.control import (
    DEFAULT_API_PREFIX,
    INFO_RESPONSE_TYPE,
    PING_RESPONSE_TYPE,
    STATS_RESPONSE_TYPE,
    ServiceVerb,
    control_subject,
    control_subjects,
    validate_api_prefix,
)
from micro.errors import ValidationError
from micro.ids import new_id
from transports.subjects import is_valid_subject, matches

VERBS = ["PING", "INFO", "STATS"]


@pytest.mark.parametrize("verb", VERBS)
def test_b10_subject_forms(verb: str) -> None:
    assert control_subject(verb) == f"$SRV.{verb}"
    assert control_subject(verb, "test") == f"$SRV.{verb}.test"
    assert control_subject(verb, "test", "123") == f"$SRV.{verb}.test.123"
    assert control_subject(ServiceVerb(verb), name="test", id="123") == f"$SRV.{verb}.test.123"


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("name", [None, ""])
def test_b11_id_without_name_is_an_error(verb: str, name: str | None) -> None:
    with pytest.raises(ValidationError, match=r"service name is required.*'123'"):
        control_subject(verb, name, "123")


def test_b12_case_preserved_and_custom_prefix() -> None:
    assert control_subject("PING", "NamE", "iD") == "$SRV.PING.NamE.iD"
    assert (
        control_subject(ServiceVerb.PING, "nAMe", "iD", api_prefix="hello.service")
        == "hello.service.PING.nAMe.iD"
    )


def test_verbs_text_any_case_and_enum() -> None:
    assert control_subject("ping") == control_subject("Ping") == "$SRV.PING"
    assert str(ServiceVerb.STATS) == f"{ServiceVerb.STATS}" == "STATS"
    assert ServiceVerb("INFO") is ServiceVerb.INFO
    assert [verb.value for verb in ServiceVerb] == VERBS
    assert ServiceVerb.PING.response_type == PING_RESPONSE_TYPE
    assert ServiceVerb.INFO.response_type == INFO_RESPONSE_TYPE
    assert ServiceVerb.STATS.response_type == STATS_RESPONSE_TYPE
    assert PING_RESPONSE_TYPE == "io.nats.micro.v1.ping_response"
    assert INFO_RESPONSE_TYPE == "io.nats.micro.v1.info_response"
    assert STATS_RESPONSE_TYPE == "io.nats.micro.v1.stats_response"
    assert DEFAULT_API_PREFIX == "$SRV"


@pytest.mark.parametrize("verb", ["SCHEMA", "", "PINGS", 1, None])
def test_unknown_verb(verb: object) -> None:
    with pytest.raises(ValidationError, match="invalid control verb"):
        control_subject(verb)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "id", "fragment"),
    [
        ("a.b", None, "invalid service name 'a.b'"),
        ("svc", "x.y", "invalid service id 'x.y'"),
        ("svc", "*", "invalid service id '*'"),
        (">", None, "invalid service name '>'"),
        ("my svc", None, "invalid service name 'my svc'"),
    ],
)
def test_name_and_id_must_be_single_tokens(name: str, id: str | None, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        control_subject("PING", name, id)


@pytest.mark.parametrize("prefix", ["$SRV", "hello.service", "a.b.c", "$SRV-custom"])
def test_valid_api_prefixes(prefix: str) -> None:
    assert validate_api_prefix(prefix) is prefix


@pytest.mark.parametrize(
    ("prefix", "rule"),
    [
        ("", "must not be empty"),
        ("$SRV.", "empty tokens"),
        ("a..b", "empty tokens"),
        ("a.*", "wildcards"),
        ("a.>", "wildcards"),
        ("my prefix", "whitespace"),
        (5, "must be a str"),
    ],
)
def test_invalid_api_prefixes(prefix: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        validate_api_prefix(prefix)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=rule):
        control_subject("PING", api_prefix=prefix)  # type: ignore[arg-type]


def test_control_subjects_are_the_nine_in_order() -> None:
    assert control_subjects("svc", "ID1") == [
        (ServiceVerb.PING, "$SRV.PING"),
        (ServiceVerb.PING, "$SRV.PING.svc"),
        (ServiceVerb.PING, "$SRV.PING.svc.ID1"),
        (ServiceVerb.INFO, "$SRV.INFO"),
        (ServiceVerb.INFO, "$SRV.INFO.svc"),
        (ServiceVerb.INFO, "$SRV.INFO.svc.ID1"),
        (ServiceVerb.STATS, "$SRV.STATS"),
        (ServiceVerb.STATS, "$SRV.STATS.svc"),
        (ServiceVerb.STATS, "$SRV.STATS.svc.ID1"),
    ]


def test_control_subjects_custom_prefix_keyword_or_positional() -> None:
    expected = [subject for _, subject in control_subjects("N", "i")]
    expected = [subject.replace("$SRV", "hello.service", 1) for subject in expected]
    by_keyword = control_subjects("N", "i", api_prefix="hello.service")
    assert [subject for _, subject in by_keyword] == expected
    assert control_subjects("N", "i", "hello.service") == by_keyword


@pytest.mark.parametrize(("name", "id"), [("", "i"), ("svc", ""), ("a.b", "i"), ("svc", "a b")])
def test_control_subjects_need_a_valid_name_and_id(name: str, id: str) -> None:
    with pytest.raises(ValidationError):
        control_subjects(name, id)


def test_generated_ids_make_distinct_valid_literal_subjects() -> None:
    first, second = new_id(), new_id()
    subjects = [subject for _, subject in control_subjects("svc", first)]
    assert len(set(subjects)) == 9
    assert all(is_valid_subject(subject) for subject in subjects)
    own = control_subject("PING", "svc", first)
    assert matches(own, own)
    assert not matches(own, control_subject("PING", "svc", second))
