"""Wire models (ADR-32 PING/INFO/STATS; docs/wire.md), timestamps and service error replies.

Golden payloads in ``golden/`` are hand-written from ADR-32 and docs/wire.md in the shape each
reference implementation sends (``go_*``, ``js_*``, ``py_*``, ``contrib_*``), plus
``offset_stats`` (numeric offset), ``future_info`` (unknown keys) and ``spec_*`` (the
exact bytes our writer must produce).
"""

from __future__ import annotations

import copy
import json
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from micro.control import INFO_RESPONSE_TYPE, PING_RESPONSE_TYPE, STATS_RESPONSE_TYPE
from micro.errors import ERROR_CODE_HEADER, ERROR_HEADER, ServiceError
from micro.models import (
    EndpointInfo,
    EndpointStats,
    PingInfo,
    ServiceInfo,
    ServiceStats,
    format_timestamp,
    parse_timestamp,
)

GOLDEN = Path(__file__).parent / "golden"
SCHEMAS = Path(__file__).resolve().parents[2] / "testing" / "conformance" / "schemas"

UTC = timezone.utc
NUID = "Xk3p9QzV1bLr7TmWc2NaHd"
HEX_ID = "3f9a0c5e7b2d4f6a8c1e0b9d7f5a3c2e"
STARTED = datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)


# ----------------------------------------------------------------------------- schema helpers


def _date_time_checker() -> FormatChecker:
    """A format checker whose ``date-time`` really is checked (by our RFC 3339 parser)."""
    checker = FormatChecker(formats=())

    @checker.checks("date-time", raises=(ValueError, TypeError))
    def is_date_time(instance: object) -> bool:
        return not isinstance(instance, str) or isinstance(parse_timestamp(instance), datetime)

    return checker


def _validator(kind: str) -> Draft7Validator:
    schema = json.loads((SCHEMAS / f"{kind}_response.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=_date_time_checker())


VALIDATORS = {
    cls: _validator(kind)
    for cls, kind in ((PingInfo, "ping"), (ServiceInfo, "info"), (ServiceStats, "stats"))
}


def assert_schema_valid(model: PingInfo | ServiceInfo | ServiceStats) -> None:
    document = json.loads(model.to_json())
    errors = sorted(VALIDATORS[type(model)].iter_errors(document), key=str)
    assert not errors, [error.message for error in errors]


def test_date_time_format_is_really_checked() -> None:
    validator = VALIDATORS[ServiceStats]
    good = ServiceStats("svc", "id1", "1.0.0", STARTED, []).as_dict()
    validator.validate(good)
    for bad in ("yesterday", "2024-05-01T10:20:30", "2024-05-01", "2024-02-30T00:00:00Z"):
        with pytest.raises(SchemaError, match="date-time"):
            validator.validate({**good, "started": bad})


# ----------------------------------------------------------------------------- writer


def test_minimal_models_write_exact_wire_form() -> None:
    assert PingInfo("svc", "id1", "1.0.0").as_dict() == {
        "type": PING_RESPONSE_TYPE,
        "name": "svc",
        "id": "id1",
        "version": "1.0.0",
        "metadata": {},
    }
    assert ServiceInfo("svc", "id1", "1.0.0", "", {}, []).as_dict() == {
        "type": INFO_RESPONSE_TYPE,
        "name": "svc",
        "id": "id1",
        "version": "1.0.0",
        "metadata": {},
        "description": "",
        "endpoints": [],
    }
    assert ServiceStats("svc", "id1", "1.0.0", STARTED, []).as_dict() == {
        "type": STATS_RESPONSE_TYPE,
        "name": "svc",
        "id": "id1",
        "version": "1.0.0",
        "metadata": {},
        "started": "2024-05-01T10:20:30.000000Z",
        "endpoints": [],
    }
    assert EndpointInfo("e", "s").as_dict() == {
        "name": "e",
        "subject": "s",
        "queue_group": "",
        "metadata": None,
    }
    assert EndpointStats("e", "s").as_dict() == {
        "name": "e",
        "subject": "s",
        "queue_group": "",
        "num_requests": 0,
        "num_errors": 0,
        "last_error": "",
        "processing_time": 0,
        "average_processing_time": 0,
        "data": None,
    }


def _maximal_info() -> ServiceInfo:
    return ServiceInfo(
        "Orders",
        NUID,
        "1.4.0",
        "order intake",
        {"region": "eu"},
        [
            EndpointInfo("create", "orders.create", {"schema": "v2"}, "q"),
            EndpointInfo("watch", "orders.events.>", None, None),
        ],
    )


def _maximal_stats() -> ServiceStats:
    return ServiceStats(
        "Orders",
        NUID,
        "1.4.0",
        datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=UTC),
        [
            EndpointStats(
                "create", "orders.create", 3, 1, "400:missing customer", 4500000, 1500000, "q"
            ),
            EndpointStats("watch", "orders.events.>", data={"subscribers": 2}),
        ],
        {"region": "eu"},
    )


@pytest.mark.parametrize(
    ("golden", "model"),
    [
        ("spec_ping.json", PingInfo("Orders", NUID, "1.4.0", {"region": "eu"})),
        ("spec_info.json", _maximal_info()),
        ("spec_stats.json", _maximal_stats()),
    ],
)
def test_writer_produces_the_exact_golden_bytes(
    golden: str, model: PingInfo | ServiceInfo | ServiceStats
) -> None:
    assert model.to_json() == (GOLDEN / golden).read_bytes().strip()
    assert_schema_valid(model)


@pytest.mark.parametrize(
    "model",
    [
        PingInfo("a", "b", "0.0.0"),
        ServiceInfo("a", "b", "0.0.0", "", {}, []),
        ServiceStats("a", "b", "0.0.0", STARTED, []),
        ServiceInfo("a", "b", "0.0.0", "", {}, [EndpointInfo("e", "s")]),
        ServiceStats("a", "b", "0.0.0", STARTED, [EndpointStats("e", "s")]),
        _maximal_info(),
        _maximal_stats(),
    ],
)
def test_minimal_and_maximal_models_validate_against_the_schemas(
    model: PingInfo | ServiceInfo | ServiceStats,
) -> None:
    assert_schema_valid(model)


def test_unset_values_follow_the_spec_rulings() -> None:
    stats = ServiceStats("svc", "id1", "1.0.0", STARTED, [EndpointStats("e", "s", data=None)])
    document = stats.as_dict()
    assert document["metadata"] == {}  # service metadata None -> {}
    assert document["endpoints"][0]["data"] is None  # no stats callback -> null
    assert EndpointStats("e", "s", queue_group=None).as_dict()["queue_group"] == ""
    assert EndpointStats("e", "s", queue_group="").as_dict()["queue_group"] == ""
    assert EndpointInfo.from_response({"name": "e", "subject": "s", "queue_group": ""}) == (
        EndpointInfo("e", "s", None, None)
    )
    assert EndpointStats("e", "s", data={}).as_dict()["data"] == {}
    assert EndpointInfo("e", "s", metadata={}).as_dict()["metadata"] == {}


def test_as_dict_returns_copies() -> None:
    info = _maximal_info()
    document = info.as_dict()
    document["metadata"]["x"] = "y"
    document["endpoints"][0]["metadata"]["x"] = "y"
    assert info.metadata == {"region": "eu"}
    assert info.endpoints[0].metadata == {"schema": "v2"}


def test_to_json_rejects_values_go_cannot_read() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        EndpointStats("e", "s", data={"x": float("nan")}).to_json()
    with pytest.raises(TypeError, match="not JSON serializable"):
        EndpointStats("e", "s", data={"x": object()}).to_json()


def test_to_json_is_compact_utf8() -> None:
    ping = PingInfo("svc", "id1", "1.0.0", {"città": "Zürich"})
    assert (
        ping.to_json()
        == (
            '{"type":"io.nats.micro.v1.ping_response","name":"svc","id":"id1",'
            '"version":"1.0.0","metadata":{"città":"Zürich"}}'
        ).encode()
    )


# ----------------------------------------------------------------------------- construction


def test_positional_construction_in_the_documented_order() -> None:
    endpoint = EndpointInfo("e", "s", {"k": "v"}, "q")
    assert (endpoint.queue_group, endpoint.metadata) == ("q", {"k": "v"})
    stats = EndpointStats("e", "s", 1, 2, "err", 3, 4, "q", {"d": 1})
    assert (stats.num_requests, stats.num_errors, stats.last_error) == (1, 2, "err")
    assert (stats.processing_time, stats.average_processing_time) == (3, 4)
    assert (stats.queue_group, stats.data) == ("q", {"d": 1})
    assert PingInfo("n", "i", "1.0.0", {"k": "v"}).metadata == {"k": "v"}
    info = ServiceInfo("n", "i", "1.0.0", "d", {"k": "v"}, [endpoint])
    assert (info.description, info.type) == ("d", INFO_RESPONSE_TYPE)
    service_stats = ServiceStats("n", "i", "1.0.0", STARTED, [stats], {"k": "v"})
    assert (service_stats.metadata, service_stats.type) == ({"k": "v"}, STATS_RESPONSE_TYPE)


def test_models_are_slotted_and_defaults_not_shared() -> None:
    first, second = PingInfo("n", "i", "1.0.0"), PingInfo("n", "i", "1.0.0")
    assert first.metadata is not second.metadata
    assert not hasattr(first, "__dict__")
    with pytest.raises(AttributeError):
        first.extra = 1  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- golden readers

GO_INFO = _maximal_info()
GO_STATS = ServiceStats(
    "Orders",
    NUID,
    "1.4.0",
    datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC),  # 9 digits truncated to µs
    [
        EndpointStats(
            "create", "orders.create", 3, 1, "400:missing customer", 4500000, 1500000, "q"
        ),
        EndpointStats("watch", "orders.events.>"),
    ],
    {"region": "eu"},
)
GOLDEN_CASES: list[tuple[str, Any]] = [
    ("go_ping.json", PingInfo("Orders", NUID, "1.4.0", {"region": "eu"})),
    ("go_info.json", GO_INFO),
    ("go_stats.json", GO_STATS),
    (
        "go_stats_whole_second.json",
        ServiceStats(
            "Orders",
            NUID,
            "1.4.0",
            STARTED,
            [
                EndpointStats(
                    "watch", "orders.events.>", 7, 0, "", 700, 100, "q", {"subscribers": 2}
                ),
            ],
            {},
        ),
    ),
    ("js_ping.json", PingInfo("Orders", NUID, "1.4.0", {})),
    (
        "js_info.json",
        ServiceInfo(
            "Orders", NUID, "1.4.0", "", {}, [EndpointInfo("create", "orders.create", None, "q")]
        ),
    ),
    (
        "js_stats.json",
        ServiceStats(
            "Orders",
            NUID,
            "1.4.0",
            datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=UTC),
            [
                EndpointStats("create", "orders.create", 2, 0, "", 0, 0, "q"),
                EndpointStats("fail", "orders.fail", 1, 1, "boom", 1000000, 1000000, "q"),
            ],
            {},
        ),
    ),
    ("py_ping.json", PingInfo("Orders", NUID, "1.4.0", {})),
    (
        "py_info.json",
        ServiceInfo(
            "Orders", NUID, "1.4.0", "", {}, [EndpointInfo("create", "orders.create", None, "q")]
        ),
    ),
    (
        "py_stats.json",
        ServiceStats(
            "Orders",
            NUID,
            "1.4.0",
            datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=UTC),
            [
                EndpointStats(
                    "create", "orders.create", 1, 1, "ValueError('boom')", 52000, 52000, "q", None
                ),
            ],
            {},
        ),
    ),
    ("contrib_ping.json", PingInfo("Orders", HEX_ID, "1.4.0", {})),
    (
        "contrib_info.json",
        ServiceInfo(
            "Orders", HEX_ID, "1.4.0", "", {}, [EndpointInfo("create", "orders.create", {}, "q")]
        ),
    ),
    (
        "contrib_stats.json",
        ServiceStats(
            "Orders",
            HEX_ID,
            "1.4.0",
            datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC),
            [
                EndpointStats(
                    "create", "orders.create", 1, 1, "ValueError('boom')", 52000, 52000, "q", {}
                ),
            ],
            {},
        ),
    ),
    (
        "offset_stats.json",
        ServiceStats(
            "Orders", NUID, "1.4.0", datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=UTC), [], {}
        ),
    ),
    (
        "future_info.json",
        ServiceInfo(
            "Orders",
            NUID,
            "2.0.0-rc.1+build.7",
            "with keys from the future",
            {"_nats.owner": "ops"},
            [EndpointInfo("create", "orders.create", None, "q")],
        ),
    ),
    ("spec_ping.json", PingInfo("Orders", NUID, "1.4.0", {"region": "eu"})),
    ("spec_info.json", _maximal_info()),
    ("spec_stats.json", _maximal_stats()),
]


def _model_class(golden: str) -> type[PingInfo | ServiceInfo | ServiceStats]:
    kind = golden.rsplit("_", 1)[1].removesuffix(".json")
    if golden.startswith("go_stats"):
        kind = "stats"
    return {"ping": PingInfo, "info": ServiceInfo, "stats": ServiceStats}[kind]


def test_every_golden_file_has_a_case() -> None:
    assert {path.name for path in GOLDEN.glob("*.json")} == {name for name, _ in GOLDEN_CASES}


@pytest.mark.parametrize(("golden", "expected"), GOLDEN_CASES, ids=[n for n, _ in GOLDEN_CASES])
def test_golden_payload_parses_to_expected_model(golden: str, expected: Any) -> None:
    payload = json.loads((GOLDEN / golden).read_bytes())
    model = _model_class(golden).from_response(payload)
    assert model == expected
    assert type(model) is type(expected)
    if isinstance(model, ServiceStats):
        assert model.started.tzinfo == UTC


@pytest.mark.parametrize(("golden", "expected"), GOLDEN_CASES, ids=[n for n, _ in GOLDEN_CASES])
def test_golden_payload_reencodes_schema_valid(golden: str, expected: Any) -> None:
    """What ``nats micro`` does: decode, re-encode, validate (natscli's schema check)."""
    payload = json.loads((GOLDEN / golden).read_bytes())
    assert_schema_valid(_model_class(golden).from_response(payload))


def test_foreign_goldens_against_schema_as_sent() -> None:
    """The schemas accept what Go and contrib send; nats.py's ``description: null`` and
    nats.js's missing ``last_error`` do not -- our re-encoding of them does (above)."""
    known_invalid = {
        "py_info.json": ["None is not of type 'string'"],
        "js_stats.json": ["'last_error' is a required property"],
    }
    for path in sorted(GOLDEN.glob("*.json")):
        payload = json.loads(path.read_bytes())
        errors = VALIDATORS[_model_class(path.name)].iter_errors(payload)
        assert sorted(error.message for error in errors) == known_invalid.get(path.name, [])


# ----------------------------------------------------------------------------- tolerant reader


def test_reader_defaults_for_absent_or_null_fields() -> None:
    ping = PingInfo.from_response({"name": "n", "id": "i", "version": "1.0.0", "metadata": None})
    assert ping == PingInfo("n", "i", "1.0.0", {}, PING_RESPONSE_TYPE)
    info = ServiceInfo.from_response({"name": "n", "id": "i", "version": "1.0.0"})
    assert info == ServiceInfo("n", "i", "1.0.0", "", {}, [])
    stats = ServiceStats.from_response(
        {
            "name": "n",
            "id": "i",
            "version": "1.0.0",
            "started": "2024-05-01T10:20:30Z",
            "endpoints": None,
        }
    )
    assert stats == ServiceStats("n", "i", "1.0.0", STARTED, [], {})
    endpoint = EndpointStats.from_response({"name": "e", "subject": "s", "num_requests": 5.0})
    assert endpoint == EndpointStats("e", "s", num_requests=5)


def test_reader_rounds_fractional_durations_as_nats_js_sends_them() -> None:
    endpoint = EndpointStats.from_response(
        {
            "name": "e",
            "subject": "s",
            "num_requests": 3,
            "processing_time": 1000000,
            "average_processing_time": 333333.3333333333,
        }
    )
    assert (endpoint.processing_time, endpoint.average_processing_time) == (1000000, 333333)
    with pytest.raises(ValueError, match="num_requests"):
        EndpointStats.from_response({"name": "e", "subject": "s", "num_requests": 1.5})


def test_reader_keeps_received_type_and_any_json_data() -> None:
    ping = PingInfo.from_response({"type": "junk", "name": "n", "id": "i", "version": "1.0.0"})
    assert ping.type == "junk"  # filtering by type is the discovery client's business
    endpoint = EndpointStats.from_response({"name": "e", "subject": "s", "data": [1, "two"]})
    assert cast(object, endpoint.data) == [1, "two"]
    assert endpoint.as_dict()["data"] == [1, "two"]


def test_reader_does_not_alias_input() -> None:
    payload = json.loads((GOLDEN / "go_info.json").read_bytes())
    original = copy.deepcopy(payload)
    info = ServiceInfo.from_response(payload)
    info.metadata["x"] = "y"
    assert info.endpoints[0].metadata is not None
    info.endpoints[0].metadata["x"] = "y"
    assert payload == original


_BASE_STATS = {"name": "n", "id": "i", "version": "1.0.0", "started": "2024-05-01T10:20:30Z"}


@pytest.mark.parametrize(
    ("cls", "payload", "message"),
    [
        (PingInfo, ["not", "an", "object"], "PING response must be a JSON object"),
        (PingInfo, {"id": "i", "version": "1.0.0"}, "field 'name' is missing"),
        (PingInfo, {"name": 1, "id": "i", "version": "1.0.0"}, "field 'name' must be a string"),
        (
            PingInfo,
            {"name": "n", "id": "i", "version": "1.0.0", "metadata": {"a": 1}},
            "metadata entry 'a'",
        ),
        (
            PingInfo,
            {"name": "n", "id": "i", "version": "1.0.0", "metadata": []},
            "field 'metadata' must be an object",
        ),
        (PingInfo, {"name": "n", "id": "i", "version": "1.0.0", "type": 3}, "field 'type'"),
        (
            ServiceInfo,
            {"name": "n", "id": "i", "version": "1.0.0", "description": 5},
            "field 'description'",
        ),
        (
            ServiceInfo,
            {"name": "n", "id": "i", "version": "1.0.0", "endpoints": {}},
            "field 'endpoints' must be an array",
        ),
        (
            ServiceInfo,
            {"name": "n", "id": "i", "version": "1.0.0", "endpoints": ["x"]},
            r"endpoints\[0\] must be a JSON object",
        ),
        (
            ServiceInfo,
            {"name": "n", "id": "i", "version": "1.0.0", "endpoints": [{"name": "e"}]},
            "INFO endpoint field 'subject' is missing",
        ),
        (
            ServiceStats,
            {k: v for k, v in _BASE_STATS.items() if k != "started"},
            "field 'started' is missing",
        ),
        (
            ServiceStats,
            {**_BASE_STATS, "started": "2024-05-01 10:20:30"},
            "field 'started': invalid timestamp",
        ),
        (
            ServiceStats,
            {**_BASE_STATS, "endpoints": [{"name": "e", "subject": "s", "num_requests": "3"}]},
            "field 'num_requests' must be an integer",
        ),
        (
            ServiceStats,
            {**_BASE_STATS, "endpoints": [{"name": "e", "subject": "s", "num_errors": True}]},
            "field 'num_errors' must be an integer",
        ),
        (
            ServiceStats,
            {**_BASE_STATS, "endpoints": [{"name": "e", "subject": "s", "processing_time": "1"}]},
            "field 'processing_time' must be a number of nanoseconds",
        ),
    ],
)
def test_reader_rejects_unreadable_documents_naming_the_field(
    cls: type[PingInfo | ServiceInfo | ServiceStats], payload: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls.from_response(payload)


# ----------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:20:30Z", STARTED),
        ("2024-05-01T10:20:30.5Z", STARTED.replace(microsecond=500000)),
        ("2024-05-01T10:20:30.123Z", STARTED.replace(microsecond=123000)),
        ("2024-05-01T10:20:30.123456Z", STARTED.replace(microsecond=123456)),
        ("2024-05-01T10:20:30.123456789Z", STARTED.replace(microsecond=123456)),
        ("2024-05-01T10:20:30.999999999Z", STARTED.replace(microsecond=999999)),
        ("2024-05-01T10:20:30.000000001Z", STARTED),
        ("2024-05-01t10:20:30z", STARTED),
        ("2024-05-01T12:20:30+02:00", STARTED),
        ("2024-05-01T04:50:30.25-05:30", STARTED.replace(microsecond=250000)),
        ("2024-05-01T10:20:30-00:00", STARTED),
        ("2024-01-01T00:30:00+01:00", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_accepts_rfc3339(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-05-01T10:20:30",  # no offset
        "2024-05-01 10:20:30Z",  # space separator
        "2024-05-01T10:20:30.Z",  # empty fraction
        "2024-05-01T10:20Z",  # no seconds
        "2024-5-01T10:20:30Z",
        "2024-13-01T10:20:30Z",
        "2024-02-30T10:20:30Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:20:60Z",  # leap second: datetime cannot hold it
        "2024-05-01T10:20:30+24:00",
        "2024-05-01T10:20:30+0200",
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
        "\uff12\uff10\uff12\uff14-05-01T10:20:30Z",  # fullwidth digits
        "2024-05-01T10:20:30Z\n",
    ],
)
def test_parse_timestamp_rejects_non_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_timestamp(text)


def test_parse_and_format_reject_wrong_types() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse_timestamp(1714558830)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a datetime"):
        format_timestamp("2024-05-01T10:20:30Z")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (STARTED, "2024-05-01T10:20:30.000000Z"),
        (STARTED.replace(microsecond=500000), "2024-05-01T10:20:30.500000Z"),
        (STARTED.replace(microsecond=123000), "2024-05-01T10:20:30.123000Z"),
        (STARTED.replace(microsecond=1), "2024-05-01T10:20:30.000001Z"),
        (STARTED.replace(tzinfo=None), "2024-05-01T10:20:30.000000Z"),  # naive = UTC
        (
            datetime(2024, 5, 1, 12, 20, 30, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T10:20:30.000000Z",
        ),
        (datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC), "0005-01-02T03:04:05.000000Z"),
    ],
)
def test_format_timestamp_is_utc_z_six_digits(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


@given(
    st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
    )
)
def test_timestamp_round_trip(moment: datetime) -> None:
    assert parse_timestamp(format_timestamp(moment)) == moment


# ----------------------------------------------------------------------------- round trip property

names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
versions = st.builds(
    lambda major, minor, patch, suffix: f"{major}.{minor}.{patch}{suffix}",
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 999),
    st.sampled_from(["", "-alpha.1", "-rc.1+build.5", "+sha.5114f85", "-0.3.7", "-x-y-z.--"]),
)
ids = st.from_regex(r"[0-9A-Za-z]{22}", fullmatch=True) | st.from_regex(
    r"[0-9a-f]{32}", fullmatch=True
)
tokens = st.from_regex(r"[A-Za-z0-9_$-]{1,8}", fullmatch=True) | st.just("*")
subjects = st.builds(
    lambda parts, tail: ".".join(parts + tail),
    st.lists(tokens, min_size=1, max_size=4),
    st.sampled_from([[], [">"]]),
)
texts = st.text(max_size=12)
metadata = st.dictionaries(texts, texts, max_size=4)
int64 = st.integers(-(2**63), 2**63 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | int64 | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9000, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)

queue_groups = st.none() | texts.filter(bool)  # "" reads back as None (canonical form)
endpoint_infos = st.builds(EndpointInfo, names, subjects, st.none() | metadata, queue_groups)
endpoint_stats = st.builds(
    EndpointStats,
    names,
    subjects,
    int64,
    int64,
    texts,
    int64,
    int64,
    queue_groups,
    st.none() | st.dictionaries(texts, json_values, max_size=3),
)
models = st.one_of(
    st.builds(PingInfo, names, ids, versions, metadata),
    st.builds(
        ServiceInfo, names, ids, versions, texts, metadata, st.lists(endpoint_infos, max_size=3)
    ),
    st.builds(
        ServiceStats, names, ids, versions, moments, st.lists(endpoint_stats, max_size=3), metadata
    ),
)


@given(models)
def test_round_trip_through_json(model: PingInfo | ServiceInfo | ServiceStats) -> None:
    """Wire values the writer normalises (``None`` queue group / service metadata) are
    generated in their normal form; their normalisation is pinned by the tests above."""
    assert type(model).from_response(model.as_dict()) == model
    assert type(model).from_response(json.loads(model.to_json())) == model
    assert_schema_valid(model)


# ----------------------------------------------------------------------------- ServiceError


def test_service_error_str_repr_and_attributes() -> None:
    error = ServiceError(503, "busy", subject="a.b", data=b"x", headers={"k": "v"})
    assert str(error) == "503:busy"
    assert repr(error) == "ServiceError(code=503, description='busy')"
    assert (error.code, error.description, error.subject, error.data) == (503, "busy", "a.b", b"x")
    assert error.headers == {"k": "v"}
    assert error.args == (503, "busy")
    assert ServiceError(1, "d").headers == {}


def test_service_error_pickles_and_copies_with_all_attributes() -> None:
    error = ServiceError(411, "data required", subject="svc.add", data=b"?", headers={"k": "v"})
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert isinstance(clone, ServiceError)
        assert (clone.code, clone.description, clone.subject, clone.data, clone.headers) == (
            411,
            "data required",
            "svc.add",
            b"?",
            {"k": "v"},
        )
        assert str(clone) == "411:data required"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ({}, None),
        ({"key": "value"}, None),
        ({ERROR_HEADER: "oops"}, None),  # description without code: not an error
        ({ERROR_CODE_HEADER: "", ERROR_HEADER: "oops"}, None),
        ({"nats-service-error-code": "500"}, None),  # names are case-sensitive
        ({ERROR_CODE_HEADER: "411", ERROR_HEADER: "data required"}, (411, "data required")),
        ({ERROR_CODE_HEADER: "500", ERROR_HEADER: "oops", "key": "v"}, (500, "oops")),
        ({ERROR_CODE_HEADER: " 42 ", ERROR_HEADER: "spaced"}, (42, "spaced")),
        ({ERROR_CODE_HEADER: "abc", ERROR_HEADER: "bad code"}, (400, "bad code")),
        ({ERROR_CODE_HEADER: "4" * 40, ERROR_HEADER: "huge"}, (400, "huge")),
        ({ERROR_CODE_HEADER: "503"}, (503, "503")),  # missing description -> code text
        ({ERROR_CODE_HEADER: "503", ERROR_HEADER: ""}, (503, "503")),
    ],
)
def test_service_error_from_headers(
    headers: dict[str, str] | None, expected: tuple[int, str] | None
) -> None:
    error = ServiceError.from_headers(headers, subject="svc.op", data=b"payload")
    if expected is None:
        assert error is None
        return
    assert error is not None
    assert (error.code, error.description) == expected
    assert (error.subject, error.data) == ("svc.op", b"payload")
    assert headers is not None
    assert error.headers == headers
    assert error.headers is not headers
