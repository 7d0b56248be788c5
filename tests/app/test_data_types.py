"""Codecs of ``micro.app.data_types``: usable without an App, clear errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic
import pytest

from micro.app.data_types import Codec, DecodeError, EncodeError, codec_for, decode, encode


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Duck:
    """A model class without pydantic: only model_validate/model_dump."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def model_validate(cls, obj: Any) -> Duck:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            raise ValueError("a Duck needs a str name")
        return cls(obj["name"])

    def model_dump(self) -> dict[str, Any]:
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duck) and other.name == self.name

    __hash__ = None  # type: ignore[assignment]


class User(pydantic.BaseModel):
    name: str
    age: int


@pytest.mark.parametrize(
    ("value", "payload"),
    [
        (b"\x00raw", b"\x00raw"),
        (bytearray(b"ba"), b"ba"),
        (memoryview(b"mv"), b"mv"),
        ("héllo", "héllo".encode()),
        ({"a": [1, 2.5, None, True]}, b'{"a":[1,2.5,null,true]}'),
        ([1, "x"], b'[1,"x"]'),
        ((1, 2), b"[1,2]"),
        (None, b"null"),
        (7, b"7"),
        (Point(1, 2), b'{"x":1,"y":2}'),
        (Duck("d"), b'{"name":"d"}'),
        (User(name="u", age=3), b'{"name":"u","age":3}'),
        ({"nested": Point(3, 4)}, b'{"nested":{"x":3,"y":4}}'),
        ({"nested": User(name="n", age=1)}, b'{"nested":{"name":"n","age":1}}'),
    ],
)
def test_encode_infers_the_type_from_the_value(value: Any, payload: bytes) -> None:
    assert encode(value) == payload


@pytest.mark.parametrize(
    ("data_type", "payload", "value"),
    [
        (bytes, b"\xff\x00", b"\xff\x00"),
        ("bytes", b"x", b"x"),
        (str, "é".encode(), "é"),
        ("str", b"s", "s"),
        (None, b'{"a":1}', {"a": 1}),
        ("json", b"[1]", [1]),
        ("json", b"3", 3),
        (dict, b'{"a":1}', {"a": 1}),
        ("dict", b"{}", {}),
        (list, b"[1,2]", [1, 2]),
        ("list", b"[]", []),
        (Point, b'{"x":1,"y":2}', Point(1, 2)),
        (Duck, b'{"name":"q"}', Duck("q")),
        (User, b'{"name":"u","age":3}', User(name="u", age=3)),
    ],
)
def test_decode_by_data_type(data_type: Any, payload: bytes, value: Any) -> None:
    assert decode(payload, data_type) == value


@pytest.mark.parametrize(
    ("data_type", "value"),
    [
        (bytes, b"b"),
        (str, "s"),
        (dict, {"k": "v"}),
        (list, [1, 2]),
        ("json", 1.5),
        (Point, Point(5, 6)),
        (Duck, Duck("r")),
        (User, User(name="a", age=1)),
    ],
)
def test_explicit_data_types_round_trip(data_type: Any, value: Any) -> None:
    assert decode(encode(value, data_type), data_type) == value


def test_list_data_type_accepts_tuples_on_the_way_out() -> None:
    assert encode((1, 2), list) == b"[1,2]"


@pytest.mark.parametrize(
    ("data_type", "payload", "reason"),
    [
        (str, b"\xff", "not valid UTF-8"),
        (None, b"{nope", "not valid JSON"),
        (dict, b"[1]", "expected JSON an object, got list"),
        (list, b'{"a":1}', "expected JSON an array, got dict"),
        (Point, b"[1]", "expected a JSON object, got list"),
        (Point, b'{"x":1}', "missing 1 required positional argument"),
        (Duck, b'{"name":1}', "a Duck needs a str name"),
        (User, b'{"name":"u"}', "age"),
        (User, b"{bad", "Invalid JSON"),
    ],
)
def test_decode_failures_are_clear(data_type: Any, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(payload, data_type)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.data == payload
    assert reason in str(error)
    assert "cannot decode payload as" in str(error)
    assert repr(payload[:10])[2:-1][:3] in str(error)


def test_decode_error_preview_is_bounded() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(b"x" * 1000)
    assert str(caught.value).endswith("...)")
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("value", "data_type", "needle"),
    [
        ("text", bytes, "needs a bytes-like value, got str"),
        (b"raw", str, "needs a str value, got bytes"),
        ([1], dict, "needs a dict value, got list"),
        ({"a": 1}, list, "needs a list value, got dict"),
        ({"a": 1}, Point, "needs a Point instance, got dict"),
        ({"a": 1}, User, "needs a User instance, got dict"),
        ({1, 2}, None, "cannot encode set"),
        (float("nan"), None, "cannot encode float"),
        ({"when": object()}, "json", "not JSON serializable"),
    ],
)
def test_encode_failures_are_clear(value: Any, data_type: Any, needle: str) -> None:
    with pytest.raises(EncodeError, match=needle) as caught:
        encode(value, data_type)
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize("data_type", [int, "yaml", object, 3, [dict]])
def test_unsupported_data_types_are_rejected_with_the_list_of_supported_ones(
    data_type: Any,
) -> None:
    with pytest.raises(TypeError, match=r"unsupported data_type .* use bytes, str, dict, list"):
        codec_for(data_type)


def test_a_codec_instance_is_a_data_type() -> None:
    class Upper(Codec):
        name = "upper"

        def encode(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def decode(self, data: bytes) -> Any:
            return data.decode().lower()

    codec = Upper()
    assert codec_for(codec) is codec
    assert encode("abc", codec) == b"ABC"
    assert decode(b"ABC", codec) == "abc"


def test_codecs_for_classes_are_cached() -> None:
    assert codec_for(Point) is codec_for(Point)
    assert codec_for(dict) is codec_for("dict")
