"""The public surface of ``micro.app`` is pinned: changing it is a deliberate act."""

from __future__ import annotations

import ast
from pathlib import Path

import micro.app
import micro.app.data_types


def test_micro_app_exports() -> None:
    assert sorted(micro.app.__all__) == [
        "App",
        "AppError",
        "AppFailedError",
        "AppNotRunningError",
        "DEFAULT_MAX_CONCURRENCY",
        "DEFAULT_REQUEST_TIMEOUT",
        "DecodeError",
        "EncodeError",
        "ErrorLoggingMiddleware",
        "Message",
        "Middleware",
        "NatsFacade",
        "SERVICE_QUEUE",
        "SyncCallInLoopError",
        "Timing",
        "TimingMiddleware",
        "decode",
        "encode",
    ]
    for name in micro.app.__all__:
        assert getattr(micro.app, name) is not None


def test_codecs_module_exports() -> None:
    assert sorted(micro.app.data_types.__all__) == [
        "Codec",
        "DEFAULT_DATA_TYPE",
        "DataType",
        "DecodeError",
        "EncodeError",
        "codec_for",
        "decode",
        "encode",
        "is_custom_codec",
    ]


def test_the_codecs_depend_on_nothing_of_the_app() -> None:
    """``data_types`` imports only the standard library: usable on any ``Msg.data``."""
    tree = ast.parse(Path(micro.app.data_types.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {"__future__", "dataclasses", "json", "collections", "typing"}
