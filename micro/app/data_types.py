"""Payload codecs: turn message bodies into Python values and back.

Independent of :class:`~micro.app.App`: any code holding ``bytes`` from a
:class:`~transports.base.Msg` can use :func:`encode` and :func:`decode`.

A *data type* names a codec:

============================  ===============================================================
data type                     payload
============================  ===============================================================
``bytes`` / ``"bytes"``       the bytes unchanged (``bytearray``/``memoryview`` accepted out)
``str`` / ``"str"``           UTF-8 text
``"json"``                    any JSON value (the default for decoding)
``dict`` / ``"dict"``         JSON that must be an object
``list`` / ``"list"``         JSON that must be an array (tuples are accepted out)
a dataclass                   a JSON object; decoded as ``cls(**object)``
a model class                 any class with ``model_validate`` and ``model_dump`` (pydantic v2
                              and look-alikes; ``model_validate_json``/``model_dump_json`` are
                              used when present)
============================  ===============================================================

Encoding without a data type infers it from the value: bytes-likes as is, ``str`` as
UTF-8, dataclass and model instances as JSON objects, anything else as JSON (``None``,
numbers, ``bool``, ``dict``, ``list``/``tuple``; dataclasses and models nested in them too).
JSON is written compact, UTF-8, without ``NaN``/``Infinity``.

Failures are clear: an unusable data type raises ``TypeError`` naming it; a value that
cannot be encoded raises :class:`EncodeError` (a ``TypeError``); a payload that cannot be
decoded raises :class:`DecodeError` (a ``ValueError``) naming the data type, the reason
and the first bytes of the payload.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_DATA_TYPE",
    "Codec",
    "DataType",
    "DecodeError",
    "EncodeError",
    "codec_for",
    "decode",
    "encode",
    "is_custom_codec",
]

DataType = Any
"""A data type: ``bytes``, ``str``, ``dict``, ``list``, a dataclass, a model class, or one
of the names ``"bytes"``, ``"str"``, ``"json"``, ``"dict"``, ``"list"``."""

DEFAULT_DATA_TYPE = "json"
"""What :func:`decode` uses when no data type is given: any JSON value."""

_PREVIEW_BYTES = 60
_SUPPORTED = (
    "bytes, str, dict, list, 'json', a dataclass, or a class with "
    "model_validate/model_dump (e.g. a pydantic model)"
)


class DecodeError(ValueError):
    """A payload could not be decoded as the requested data type.

    Attributes: ``data_type`` (the codec's name), ``reason`` and ``data`` (the payload).
    """

    def __init__(self, data_type: str, reason: str, data: bytes) -> None:
        preview = data[:_PREVIEW_BYTES]
        more = "..." if len(data) > _PREVIEW_BYTES else ""
        super().__init__(
            f"cannot decode payload as {data_type}: {reason} (payload {preview!r}{more})"
        )
        self.data_type = data_type
        self.reason = reason
        self.data = data


class EncodeError(TypeError):
    """A value could not be encoded (wrong type for the data type, or not JSON-encodable)."""


def _json_default(value: Any) -> Any:
    """``json.dumps`` hook: dataclass and model instances nested in JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except TypeError:
            return dump()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)


def _dump_json(value: Any) -> bytes:
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"cannot encode {type(value).__name__} as JSON: {exc}") from exc
    return text.encode()


def _load_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(
            name, f"not valid JSON ({exc}; use data_type=str or bytes for other payloads)", data
        ) from exc


class Codec:
    """Encodes values to payloads and decodes payloads to values, for one data type.

    ``name`` is used in error messages.  Subclasses implement :meth:`encode` and
    :meth:`decode`; they raise :class:`EncodeError` and :class:`DecodeError` only.
    """

    name = "codec"

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


class _BytesCodec(Codec):
    name = "bytes"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise EncodeError(f"data_type bytes needs a bytes-like value, got {type(value).__name__}")

    def decode(self, data: bytes) -> Any:
        return bytes(data)


class _StrCodec(Codec):
    name = "str"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode()
        raise EncodeError(f"data_type str needs a str value, got {type(value).__name__}")

    def decode(self, data: bytes) -> Any:
        try:
            return bytes(data).decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(
                "str", f"not valid UTF-8 ({exc.reason} at byte {exc.start})", data
            ) from exc


class _JsonCodec(Codec):
    """JSON; ``expect`` restricts the top-level value (``dict`` or ``list``)."""

    def __init__(self, expect: type | None) -> None:
        self._expect = expect
        self.name = "json" if expect is None else expect.__name__

    def encode(self, value: Any) -> bytes:
        expect = self._expect
        if expect is list and isinstance(value, tuple):
            value = list(value)
        if expect is not None and not isinstance(value, expect):
            raise EncodeError(
                f"data_type {self.name} needs a {self.name} value, got {type(value).__name__}"
            )
        return _dump_json(value)

    def decode(self, data: bytes) -> Any:
        value = _load_json(data, self.name)
        expect = self._expect
        if expect is not None and not isinstance(value, expect):
            kind = "an object" if expect is dict else "an array"
            raise DecodeError(self.name, f"expected JSON {kind}, got {type(value).__name__}", data)
        return value


class _ClassCodec(Codec):
    """A codec for the instances of one class (``name``: the class name)."""

    def __init__(self, cls: type) -> None:
        self._cls = cls
        self.name = cls.__name__

    def _check(self, value: Any) -> None:
        if not isinstance(value, self._cls):
            raise EncodeError(
                f"data_type {self.name} needs a {self.name} instance, got {type(value).__name__}"
            )


class _DataclassCodec(_ClassCodec):
    def encode(self, value: Any) -> bytes:
        self._check(value)
        return _dump_json(dataclasses.asdict(value))

    def decode(self, data: bytes) -> Any:
        fields = _load_json(data, self.name)
        if not isinstance(fields, dict):
            raise DecodeError(
                self.name, f"expected a JSON object, got {type(fields).__name__}", data
            )
        try:
            return self._cls(**fields)
        except (TypeError, ValueError) as exc:
            raise DecodeError(self.name, str(exc), data) from exc


class _ModelCodec(_ClassCodec):
    """Classes with ``model_validate``/``model_dump`` (pydantic v2 and look-alikes)."""

    def encode(self, value: Any) -> bytes:
        self._check(value)
        return _encode_model(value)

    def decode(self, data: bytes) -> Any:
        cls: Any = self._cls
        try:
            validate_json = getattr(cls, "model_validate_json", None)
            if callable(validate_json):
                return validate_json(data)
            return cls.model_validate(_load_json(data, self.name))
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(self.name, str(exc), data) from exc


def _encode_model(value: Any) -> bytes:
    dump_json = getattr(value, "model_dump_json", None)
    if callable(dump_json):
        try:
            text = dump_json()
        except Exception as exc:
            raise EncodeError(f"cannot encode {type(value).__name__}: {exc}") from exc
        return text.encode() if isinstance(text, str) else bytes(text)
    return _dump_json(_json_default(value))


def _is_model_class(candidate: type) -> bool:
    return callable(getattr(candidate, "model_validate", None)) and callable(
        getattr(candidate, "model_dump", None)
    )


_BYTES = _BytesCodec()
_STR = _StrCodec()
_JSON = _JsonCodec(None)
_DICT = _JsonCodec(dict)
_LIST = _JsonCodec(list)
_BY_NAME: dict[Any, Codec] = {
    bytes: _BYTES,
    "bytes": _BYTES,
    str: _STR,
    "str": _STR,
    "json": _JSON,
    dict: _DICT,
    "dict": _DICT,
    list: _LIST,
    "list": _LIST,
}
_by_class: dict[type, Codec] = {}


def codec_for(data_type: DataType) -> Codec:
    """The codec a data type names (``None``: the default, :data:`DEFAULT_DATA_TYPE`).

    A :class:`Codec` instance is returned as is.  Raises ``TypeError`` naming the value
    and the supported data types for anything else.
    """
    if data_type is None:
        return _JSON
    if isinstance(data_type, Codec):
        return data_type
    try:
        known = _BY_NAME.get(data_type)
    except TypeError:  # unhashable
        known = None
    if known is not None:
        return known
    if isinstance(data_type, type):
        cached = _by_class.get(data_type)
        if cached is not None:
            return cached
        codec: Codec | None = None
        if dataclasses.is_dataclass(data_type):
            codec = _DataclassCodec(data_type)
        elif _is_model_class(data_type):
            codec = _ModelCodec(data_type)
        if codec is not None:
            _by_class[data_type] = codec
            return codec
    raise TypeError(f"unsupported data_type {data_type!r}: use {_SUPPORTED}")


def is_custom_codec(codec: Codec) -> bool:
    """True for a :class:`Codec` made outside this module (a user's own codec)."""
    return not isinstance(codec, (_BytesCodec, _StrCodec, _JsonCodec, _ClassCodec))


def _infer(value: Any) -> Callable[[Any], bytes]:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _BYTES.encode
    if isinstance(value, str):
        return _STR.encode
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _DataclassCodec(type(value)).encode
    if _is_model_class(type(value)):
        return _encode_model
    return _JSON.encode


def encode(value: Any, data_type: DataType = None) -> bytes:
    """The payload for ``value``: with ``data_type`` its codec, otherwise inferred.

    Raises ``TypeError`` for an unsupported ``data_type`` and :class:`EncodeError` when
    the value does not fit the data type or is not JSON-encodable.
    """
    if data_type is None:
        cls = value.__class__
        if cls is bytes:
            return value  # type: ignore[no-any-return]
        if cls is dict or cls is list:
            return _dump_json(value)
        return _infer(value)(value)
    return codec_for(data_type).encode(value)


def decode(data: bytes, data_type: DataType = None) -> Any:
    """The value in ``data`` as ``data_type`` (``None``: any JSON value).

    Raises ``TypeError`` for an unsupported ``data_type`` and :class:`DecodeError` when
    the payload does not decode.
    """
    return codec_for(data_type).decode(data)
