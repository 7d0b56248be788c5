"""Every code block of the README and of the guides in ``docs/`` runs or is checked, as written.

A reader copies the ``python`` blocks of a document into one test module, so that is what
this test does: the blocks of each document, in order, become ``test_<document>.py`` in an
empty directory, and pytest runs it there in a subprocess, with this library's pytest plugin
as any user gets it (``-W error``; ``NATS_URL`` unset).  Top-level code (``anyio.run(main)``)
runs when pytest imports the module; every ``test_*`` function runs as a test, so a missing
``anyio`` marker, module-level state that breaks the trio run, or a fixture that does not
exist fails here as it would for the reader.  The run must pass, skip nothing, and run at
least one test per ``def test_`` in the document.  A ``python`` block whose first line is
``# file: NAME`` is written to ``NAME`` in that directory instead (a program the document's
tests start, or a ``Dockerfile`` copies).

Blocks in other languages are checked by what they are, and a language nobody checks fails:

* ``sh``: every command is one this test knows and checks -- ``pip install`` of this
  distribution with extras that exist, ``python -m micro ...`` (run, must succeed), the test
  command itself (``python -m pytest``), venv creation and activation;
* ``dockerfile``: its ``pip install`` lines as above, and every file it ``COPY``s or runs is
  a ``# file:`` block of the same document;
* ``toml``: parses, and an entry-point group it declares is the one ``transports`` reads;
* ``conf`` (a nats-server configuration): ``nats-server -t`` accepts it;
* ``yaml`` (a Prometheus scrape configuration): its targets are the exporter's address;
* ``text``: output, checked against what produces it: the warning of the pytest entry
  point, a Prometheus scrape (the metric families and label names ``micro.metrics``
  reports), or a program's output that the document's next ``python`` block asserts line
  by line.

``python -m micro exporter`` serves until stopped, so an ``sh`` block running it is checked
by the command line's parser only.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DISTRIBUTION = "nats-service-kit"
_BLOCK = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```\s*$", re.S | re.M)
_FILE = re.compile(r"# file: (?P<name>[\w.-]+)\n")


@dataclass(frozen=True)
class Block:
    document: Path
    lang: str
    code: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def file_name(self) -> str | None:
        match = _FILE.match(self.code)
        return match["name"] if match else None


def blocks(document: Path) -> list[Block]:
    text = document.read_text(encoding="utf-8")
    return [
        Block(document, m["lang"], m["code"], text.count("\n", 0, m.start()) + 1)
        for m in _BLOCK.finditer(text)
    ]


def _ids(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _clean_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key != "NATS_URL" and not key.startswith(("PYTHONPATH", "PYTEST_"))
    }


def test_every_document_has_blocks_and_no_block_is_skipped() -> None:
    assert [b for b in blocks(ROOT / "README.md") if b.lang == "python"]
    for document in DOCUMENTS:
        assert "snippet: not run" not in document.read_text(encoding="utf-8"), document


# --------------------------------------------------------------------------- python


WITH_PYTHON = [d for d in DOCUMENTS if any(b.lang == "python" for b in blocks(d))]


@pytest.mark.parametrize("document", WITH_PYTHON, ids=_ids)
def test_python_blocks_run_as_a_test_module(document: Path, tmp_path: Path) -> None:
    python = [b for b in blocks(document) if b.lang == "python"]
    module: list[str] = []
    for block in python:
        if block.file_name:
            (tmp_path / block.file_name).write_text(block.code, encoding="utf-8")
        else:
            module.append(f"# --- {block.where}\n{block.code}")
    name = "test_" + re.sub(r"\W", "_", document.stem.lower()) + "_doc.py"
    (tmp_path / name).write_text("\n\n".join(module), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error", "-rA", name],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    defined = len(re.findall(r"^(?:async )?def test_", "\n".join(module), re.M))
    if defined == 0:
        assert result.returncode == 5, output  # imported (top-level code ran), no tests
        assert "error" not in output.splitlines()[-1], output
        return
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed, output
    assert int(passed[1]) >= defined, output
    assert not re.search(r"skipped|xfail|deselected|warnings?\b", summary), output


# --------------------------------------------------------------------------- other blocks


def _extras() -> set[str]:
    return set(metadata(DISTRIBUTION).get_all("Provides-Extra") or [])


def _check_pip_install(words: list[str], where: str) -> None:
    targets = [w for w in words[2:] if not w.startswith("-")]
    assert targets, f"{where}: pip install of nothing"
    for target in targets:
        match = re.fullmatch(r"(?P<name>\.|[\w.-]+)(?:\[(?P<extras>[\w,-]+)\])?", target)
        assert match, f"{where}: cannot read the requirement {target!r}"
        assert match["name"] in (".", DISTRIBUTION), (
            f"{where}: installs {match['name']!r}, not this distribution ({DISTRIBUTION})"
        )
        unknown = set((match["extras"] or "").split(",")) - {""} - _extras()
        assert not unknown, f"{where}: no such extra {sorted(unknown)} (have {sorted(_extras())})"


def _check_micro_command(words: list[str], where: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "micro", *words],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where}: micro {shlex.join(words)}:\n{result.stderr}"
    assert result.stdout, f"{where}: micro {shlex.join(words)} printed nothing"


def _check_micro_arguments(arguments: list[str], where: str) -> None:
    from micro.cli import build_parser

    try:
        build_parser().parse_args(arguments)
    except SystemExit:
        pytest.fail(f"{where}: micro {shlex.join(arguments)}: the command line refuses it")


def _check_command(command: str, where: str) -> None:
    words = shlex.split(command)
    if words[:3] in (["python3", "-m", "venv"], ["python", "-m", "venv"]):
        return  # the standard library
    if words[0] in (".", "source") and words[1:] == [".venv/bin/activate"]:
        return
    if words[:2] == ["pip", "install"]:
        _check_pip_install(words, where)
    elif words[:3] == ["python", "-m", "micro"] or words[:1] == ["micro"]:
        arguments = words[3:] if words[0] == "python" else words[1:]
        if arguments[:1] == ["exporter"]:  # serves until stopped: parse it only
            _check_micro_arguments(arguments, where)
        else:
            _check_micro_command(arguments, where)
    elif words in (["python", "-m", "pytest"], ["pytest"]):
        return  # the command running this test
    else:
        pytest.fail(f"{where}: no check for the command {command!r}: add one to this test")


def _check_sh(block: Block) -> None:
    for line in block.code.splitlines():
        line = line.split(" #", 1)[0].strip()
        for command in filter(None, (part.strip() for part in line.split("&&"))):
            _check_command(command, block.where)


def _check_dockerfile(block: Block) -> None:
    files = {b.file_name for b in blocks(block.document) if b.file_name}
    for line in block.code.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "RUN" and rest.startswith("pip install"):
            _check_pip_install(shlex.split(rest), block.where)
        elif instruction == "COPY":
            *sources, _ = rest.split()
            assert set(sources) <= files, f"{block.where}: copies {sources}, not blocks of the doc"
        elif instruction in ("CMD", "ENTRYPOINT"):
            command = list(re.findall(r'"([^"]*)"', rest))
            scripts = [w for w in command if w.endswith(".py")]
            assert command[:1] == ["python"], f"{block.where}: runs {command}"
            assert set(scripts) <= files, f"{block.where}: runs {scripts}, not blocks of the doc"
        elif instruction == "HEALTHCHECK":
            command = rest.split("CMD", 1)[1].strip()
            code = "\n".join(b.code for b in blocks(block.document) if b.lang == "python")
            assert f'"{command}"' in code, f"{block.where}: no test of the command {command!r}"


def _check_toml(block: Block) -> None:
    if sys.version_info < (3, 11):  # no tomllib: 3.10 runs the entry-point group check only
        return
    import tomllib

    tomllib.loads(block.code)


def _check_toml_entry_point_group(block: Block) -> None:
    import transports

    groups = re.findall(r'^\[project\.entry-points\."([^"]+)"\]', block.code, re.M)
    source = Path(transports.__file__).read_text(encoding="utf-8")
    for group in groups:
        assert f'"{group}"' in source, f"{block.where}: transports reads no group {group!r}"


def _check_conf(block: Block, tmp_path: Path) -> None:
    from testing.nats_server import find_nats_server

    config = tmp_path / "server.conf"
    config.write_text(block.code, encoding="utf-8")
    env = {**_clean_env(), **dict.fromkeys(re.findall(r"\$(\w+)", block.code), "secret")}
    result = subprocess.run(
        [str(find_nats_server()), "-c", str(config), "-t"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{block.where}: nats-server -t:\n{result.stderr}"


def _check_yaml(block: Block) -> None:
    from micro.cli.exporter import DEFAULT_LISTEN

    assert block.code.startswith("scrape_configs:"), f"{block.where}: not a scrape config"
    targets = re.findall(r'"([^"]+)"', "".join(re.findall(r"targets: \[(.*)\]", block.code)))
    assert targets == [DEFAULT_LISTEN], f"{block.where}: scrapes {targets}, not {DEFAULT_LISTEN}"


def _shadowing_warning_pattern() -> re.Pattern[str]:
    """The text ``transports._pytest_entry`` prints, with ``...`` for the paths."""
    import transports._pytest_entry as entry

    source = Path(entry.__file__).read_text(encoding="utf-8")
    parts = re.findall(r'f?"((?:[^"\\]|\\.)*)"', source.split("WARNING = (", 1)[1].split(")\n")[0])
    template = "micro_testing WARNING: " + "".join(parts[1:])
    pieces = re.split(r"\{[^}]*\}", template)
    return re.compile(".*".join(re.escape(p) for p in pieces) + r"\s*")


def _check_shadowing_warning(block: Block) -> None:
    assert _shadowing_warning_pattern().fullmatch(block.code), (
        f"{block.where}: not what the code prints"
    )


def _scraped_families() -> dict[str, set[frozenset[str]]]:
    """Metric family -> the label-name sets ``ServiceCollector`` reports for a service with
    an endpoint that was called."""
    import anyio
    from prometheus_client import CollectorRegistry, generate_latest

    from micro import Request, add_service
    from micro.metrics import ServiceCollector
    from transports import connect

    async def scrape() -> str:
        async with await connect("memory://") as transport:
            service = add_service(transport, "orders", "1.0.0")
            registry = CollectorRegistry()
            registry.register(ServiceCollector([service]))

            async def quote(request: Request) -> None:
                await request.respond(b"ok")

            async with service:
                await service.add_endpoint("quote", quote, subject="orders.quote")
                await transport.request("orders.quote", b"")
                return str(generate_latest(registry).decode())

    return _families(anyio.run(scrape))


def _families(text: str) -> dict[str, set[frozenset[str]]]:
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).add(frozenset(sample.labels))
    return found


def _check_prometheus_scrape(block: Block) -> None:
    shown = _families(block.code)
    produced = _scraped_families()
    # the collector reports no scrape duration: that one is the exporter's own
    produced.pop("nats_service_scrape_duration_seconds", None)
    assert shown == produced, f"{block.where}: not the families and labels micro.metrics reports"


def _check_asserted_output(block: Block) -> bool:
    """Whether the document's next ``python`` block asserts every line of ``block``."""
    later = [b for b in blocks(block.document) if b.line > block.line and b.lang == "python"]
    if not later:
        return False
    code = later[0].code
    return all(f'"{line}"' in code or repr(line) in code for line in block.code.splitlines())


_TEXT_CHECKS: dict[str, Callable[[Block], None]] = {
    "micro_testing WARNING:": _check_shadowing_warning,
    "# TYPE nats_service_": _check_prometheus_scrape,
}


def _check_text(block: Block) -> None:
    for prefix, check in _TEXT_CHECKS.items():
        if block.code.startswith(prefix):
            check(block)
            return
    if not _check_asserted_output(block):
        pytest.fail(f"{block.where}: no check for this text block: add one to this test")


def _other_blocks() -> list[Block]:
    return [b for d in DOCUMENTS for b in blocks(d) if b.lang != "python"]


@pytest.mark.parametrize("block", _other_blocks(), ids=lambda b: f"{b.where}[{b.lang}]")
def test_other_blocks_are_checked(block: Block, tmp_path: Path) -> None:
    if block.lang == "sh":
        _check_sh(block)
    elif block.lang == "dockerfile":
        _check_dockerfile(block)
    elif block.lang == "toml":
        _check_toml_entry_point_group(block)
        _check_toml(block)
    elif block.lang == "conf":
        _check_conf(block, tmp_path)
    elif block.lang == "yaml":
        _check_yaml(block)
    elif block.lang == "text":
        _check_text(block)
    else:
        pytest.fail(f"{block.where}: a {block.lang or 'plain'} block nobody checks")


def test_the_checks_catch_what_they_are_for() -> None:
    doc = ROOT / "README.md"
    with pytest.raises(AssertionError, match="no such extra"):
        _check_sh(Block(doc, "sh", "pip install -e '.[nosuch]'\n", 1))
    with pytest.raises(AssertionError, match="not this distribution"):
        _check_sh(Block(doc, "sh", "pip install 'micro-nats[test]'\n", 1))
    with pytest.raises(pytest.fail.Exception, match="no check for the command"):
        _check_sh(Block(doc, "sh", "curl example.org | sh\n", 1))
    with pytest.raises(AssertionError, match="not what the code prints"):
        _check_text(Block(doc, "text", "micro_testing WARNING: something else\n", 1))
    with pytest.raises(pytest.fail.Exception, match="no check for this text block"):
        _check_text(Block(doc, "text", "some output nobody asserts\n", 1))
    with pytest.raises(AssertionError, match="not the families and labels"):
        _check_text(
            Block(doc, "text", '# TYPE nats_service_up gauge\nnats_service_up{id="x"} 1.0\n', 1)
        )
    with pytest.raises(AssertionError, match="scrapes"):
        _check_yaml(Block(doc, "yaml", 'scrape_configs:\n  - targets: ["127.0.0.1:1"]\n', 1))
    with pytest.raises(pytest.fail.Exception, match="refuses"):
        _check_sh(Block(doc, "sh", "micro exporter --no-such-flag\n", 1))
