"""The command line's connection flags, nats CLI contexts and daily-use parity with
``nats micro`` (issue 14, item 6), against real nats-servers with authentication (user and
password, token, nkey, a ``.creds`` file on an operator-mode server) and TLS (mutual too).

Every run of the CLI here goes through :func:`cli`, which also checks that neither stdout
nor stderr shows a password, a token or a seed -- whatever the outcome.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import nkeys
import pytest
import trustme

from micro.cli import build_parser, execute, program_name, version
from micro.cli.connection import (
    CONNECTION_NAME,
    connect_target,
    normalize_servers,
    parse_seconds,
)
from micro.cli.demo import start_demo_service
from micro.cli.errors import CommandError
from micro.cli.natscontext import NatsContextError, load_context
from micro.request import Request
from micro.service import add_service
from testing.nats_server import NatsServer
from transports.memory import MemoryBroker, get_broker
from transports.nats import NatsTransport
from transports.urls import REDACTED

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "right-pw-s3cret"
WRONG = "wrong-pw-s3cret"
TOKEN = "t0ken-s3cret"
SECRET_MARK = "s3cret"
NKEY_SEED = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
NKEY_PUBLIC = nkeys.from_seed(bytearray(NKEY_SEED.encode())).public_key.decode()


class Run:
    """One ``execute`` as the program ``micro``: exit code, stdout bytes and text, stderr."""

    def __init__(self, argv: list[str], stdin: bytes = b"") -> None:
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        err = io.StringIO()
        self.code = execute(
            argv, stdout=out, stderr=err, stdin=io.TextIOWrapper(io.BytesIO(stdin)), prog="micro"
        )
        out.flush()
        self.out_bytes = raw.getvalue()
        self.out = self.out_bytes.decode("utf-8", errors="replace")
        self.err = err.getvalue()

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*argv: str, stdin: bytes = b"") -> Run:
    run = Run(list(argv), stdin)
    for secret in (PASSWORD, WRONG, TOKEN, NKEY_SEED, SECRET_MARK):
        assert secret not in run.out, run.out
        assert secret not in run.err, run.err
    return run


async def acli(*argv: str, stdin: bytes = b"") -> Run:
    """:func:`cli` from async code (the CLI runs its own event loop)."""
    return await anyio.to_thread.run_sync(partial(cli, *argv, stdin=stdin))


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``$XDG_CONFIG_HOME`` and no ``NATS_*`` variables."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("NATS_"):
            monkeypatch.delenv(name)
    return home


def write_context(config: Path, name: str, select: bool = False, **fields: Any) -> Path:
    """A context file as ``nats context save`` writes it (and ``select``-ed)."""
    directory = config / "nats" / "context"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"description": "", **fields}, indent=2))
    if select:
        (config / "nats" / "context.txt").write_text(name)
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # nats-py runs on asyncio only


def _server(tmp_path: Path, config: str) -> NatsServer:
    path = tmp_path / "server.conf"
    path.write_text(config)
    return NatsServer(config_file=path)


@asynccontextmanager
async def demo_on(url: str, **options: Any) -> AsyncIterator[str]:
    """The demo service on ``url``; yields its instance id."""
    transport = await NatsTransport.connect(url, **options)
    try:
        service = await start_demo_service(transport)
        try:
            yield service.id
        finally:
            await service.stop()
    finally:
        await transport.close()


def _hostport(url: str) -> str:
    return url.removeprefix("nats://")


# ---------------------------------------------------------------------- parsing, no server


@pytest.mark.parametrize(
    ("text", "seconds"), [("2", 2.0), ("2.5", 2.5), ("500ms", 0.5), ("3s", 3.0), ("1m", 60.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1", "soon", "2x", "", "inf", "nan"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid timeout"):
        parse_seconds(text)
    run = cli("ls", "--timeout", text)
    assert run.code == 2
    assert "invalid timeout" in run.err


def test_servers_without_a_scheme_are_nats() -> None:
    assert normalize_servers("h:4222") == "nats://h:4222"
    assert normalize_servers("h1:1, tls://h2:2") == "nats://h1:1,tls://h2:2"
    assert normalize_servers("memory://x") == "memory://x"
    with pytest.raises(CommandError, match="invalid server list"):
        normalize_servers("h1,,h2")


def test_program_name_is_the_invoked_name() -> None:
    assert program_name("/usr/local/bin/micro") == "micro"
    assert program_name("/x/site-packages/micro/__main__.py") == "python -m micro"
    assert program_name("my-tool") == "my-tool"


def test_help_shows_the_program_name_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert execute(["--help"], prog="svc-cli") == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: svc-cli ")
    assert "examples:\n  svc-cli ls" in text
    for flag in ("--creds", "--nkey", "--tlscert", "--tlskey", "--tlsca", "--user", "--context"):
        assert flag in text
    assert execute(["request", "--help"], prog="svc-cli") == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: svc-cli request ")
    assert "svc-cli request greeter.hello world" in text
    assert "data_base64" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert execute(["--version"], prog="micro") == 0
    text = capsys.readouterr().out
    assert text == f"micro ({version()})\n"
    from importlib import metadata

    name, number = version().split()
    assert metadata.version(name) == number


def test_the_console_script_and_the_module_name_themselves() -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = shutil.which("micro", path=str(Path(sys.executable).parent))
    commands = [([sys.executable, "-m", "micro"], "python -m micro")]
    if script is not None:
        source = Path(script).read_text(encoding="utf-8", errors="replace")
        if "nats_contrib.micro" in source:
            # nats-micro (an interop peer of the dev extra) installs a `micro` command too;
            # whichever was installed last owns the name: the README says so
            assert "nats_contrib" in (ROOT / "README.md").read_text(encoding="utf-8")
        else:
            assert "micro.__main__" in source, source
            commands.append(([script], "micro"))
    for command, name in commands:
        result = subprocess.run(
            [*command, "--help"], env=environment, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: {name} ")
        bad = subprocess.run(
            [*command, "ls", "--tlscert", "nowhere.pem"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 2
        assert bad.stderr.startswith(f"{name}: error: ")


def _target(*argv: str, env: dict[str, str] | None = None) -> Any:
    args = build_parser("micro").parse_args([*argv, "ls"])
    return connect_target(args, env if env is not None else dict(os.environ))


def test_flags_become_nats_py_options(tmp_path: Path) -> None:
    creds = tmp_path / "a.creds"
    creds.write_text("creds")
    target = _target("-s", "h:1", "--user", "bob", "--password", PASSWORD, "-t", "5")
    assert target.url == "nats://h:1"
    assert target.options == {
        "user": "bob",
        "password": PASSWORD,
        "connect_timeout": 5.0,
        "name": CONNECTION_NAME,
        "allow_reconnect": False,  # a command fails at once when its server goes away
        "max_reconnect_attempts": 0,
    }
    assert PASSWORD not in repr(target)
    assert _target("--user", TOKEN).options["token"] == TOKEN  # natscli: user alone is a token
    assert _target("--creds", str(creds)).options["user_credentials"] == str(creds)
    assert _target("--tlsfirst").options["tls_handshake_first"] is True
    env = {"NATS_URL": "envhost:2", "NATS_USER": "eve", "NATS_PASSWORD": PASSWORD}
    from_env = _target(env=env)
    assert (from_env.url, from_env.options["user"]) == ("nats://envhost:2", "eve")
    assert _target("-s", "flag:3", env=env).url == "nats://flag:3"  # the flag wins
    assert _target(env={"NATS_TIMEOUT": "250ms"}).timeout == 0.25


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--password", PASSWORD], "--password needs --user"),
        (["--tlscert", "x.pem"], "--tlscert and --tlskey go together"),
        (["--creds", "/nowhere/a.creds"], "invalid --creds '/nowhere/a.creds': no such file"),
        (["--nkey", "/nowhere/u.nk"], "invalid --nkey '/nowhere/u.nk': no such file"),
        (["--tlsca", "/nowhere/ca.pem"], "invalid --tlsca '/nowhere/ca.pem': no such file"),
        (["-s", "memory://x", "--user", "u", "--password", PASSWORD], "NATS servers only"),
        (["--context", "ghost"], "unknown context 'ghost'"),
        (["--context", "../evil"], "invalid context name '../evil'"),
    ],
)
def test_bad_connection_flags_are_one_line_usage_errors(argv: list[str], message: str) -> None:
    run = cli("ls", *argv)
    assert run.code == 2
    assert run.err.startswith("micro: error: ")
    assert message in run.err
    assert run.err.count("\n") == 1


def test_context_files_are_read_as_natscli_writes_them(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PKI", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    write_context(
        config_home,
        "prod",
        select=True,
        url="h1:4222,h2:4222",
        user="alice",
        password=PASSWORD,
        ca="$PKI/ca.pem",
        creds="~/a.creds",
        jetstream_domain="ignored",
        tls_first=True,
    )
    context = load_context("prod")
    assert (context.url, context.user, context.ca) == (
        "h1:4222,h2:4222",
        "alice",
        f"{tmp_path}/ca.pem",
    )
    assert context.creds == f"{tmp_path}/home/a.creds"
    assert PASSWORD not in repr(context)
    target = _target()
    assert target.context == "prod"  # selected by context.txt
    assert target.url == "nats://h1:4222,nats://h2:4222"
    assert (target.options["user"], target.options["password"]) == ("alice", PASSWORD)
    assert target.options["tls_handshake_first"] is True
    assert isinstance(target.options["tls"], ssl.SSLContext)  # from the expanded "ca"
    assert "user_credentials" not in target.options  # "user" comes first, as in natscontext
    # a credential flag replaces the context's credentials as a whole
    flagged = _target("--user", TOKEN)
    assert (flagged.options["token"], "user" in flagged.options) == (TOKEN, False)
    assert _target("--no-context").context is None
    assert _target("-s", "memory://x").options == {}  # the context's credentials: NATS only
    # without $XDG_CONFIG_HOME: ~/.config/nats
    monkeypatch.delenv("XDG_CONFIG_HOME")
    write_context(tmp_path / "home" / ".config", "dev", url="devhost:1")
    assert _target("--context", "dev").url == "nats://devhost:1"


def test_a_missing_file_of_a_context_names_the_context(config_home: Path) -> None:
    write_context(config_home, "old", creds="/nowhere/old.creds")
    run = cli("ls", "--context", "old")
    assert run.code == 2
    assert "invalid 'creds' of context 'old' '/nowhere/old.creds': no such file" in run.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"password": "' + PASSWORD + '", ', "is not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"user": "a", "token": [TOKEN]}), "field 'token' must be a string"),
        (json.dumps({"tls_first": "yes"}), "'tls_first' must be a bool"),
    ],
)
def test_malformed_contexts_are_named_never_shown(
    config_home: Path, content: str, message: str
) -> None:
    path = write_context(config_home, "broken")
    path.write_text(content)
    with pytest.raises(NatsContextError, match=message):
        load_context("broken")
    run = cli("ls", "--context", "broken")
    assert (run.code, run.err.count("\n")) == (2, 1)
    assert "'broken'" in run.err
    assert str(path) in run.err


@pytest.mark.timeout(20)
def test_a_silent_server_fails_within_the_timeout() -> None:
    """A port that accepts connections but never greets (a hung server): the connect is
    bounded by ``--timeout``, then one line, exit 1."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever writes
        port = silent.getsockname()[1]
        run = cli(
            "ls",
            "-s",
            f"127.0.0.1:{port}",
            "--timeout",
            "300ms",
            "--user",
            "u",
            "--password",
            PASSWORD,
        )
    assert run.code == 1
    assert run.err.startswith(f"micro: error: cannot connect to nats://127.0.0.1:{port}")
    assert run.err.count("\n") == 1


# ---------------------------------------------------------------------- commands, memory


async def _binary(request: Request) -> None:
    await request.respond(bytes(reversed(request.data())) + b"\x00\xff\n\x80")


@pytest.fixture
async def binary_service() -> AsyncIterator[str]:
    """``bin.reverse`` (binary replies) and the demo service on a named memory broker."""
    url = f"memory://cli-connect-{os.getpid()}"
    broker: MemoryBroker = get_broker(url.removeprefix("memory://"))
    service_conn = await broker.connect()
    demo_conn = await broker.connect()
    service = add_service(service_conn, "bin", "1.0.0")
    await service.add_endpoint("reverse", _binary, subject="bin.reverse")
    async with service:
        demo = await start_demo_service(demo_conn)
        try:
            yield url
        finally:
            await demo.stop()
            await service_conn.close()
            await demo_conn.close()


@pytest.mark.anyio
async def test_request_is_byte_exact_and_json_is_unambiguous(binary_service: str) -> None:
    payload = bytes(range(256))
    run = await acli("request", "bin.reverse", "-", "-s", binary_service, stdin=payload)
    assert run.code == 0, run.err
    assert run.out_bytes == bytes(reversed(payload)) + b"\x00\xff\n\x80"
    document = (await acli("request", "bin.reverse", "ab", "--json", "-s", binary_service)).json()
    assert document["data"] is None  # not UTF-8: no text that could be mistaken for it
    assert base64.b64decode(document["data_base64"]) == b"ba\x00\xff\n\x80"
    text = (await acli("request", "greeter.echo", "é\\x00", "-j", "-s", binary_service)).json()
    assert (text["data"], base64.b64decode(text["data_base64"])) == ("é\\x00", "é\\x00".encode())


@pytest.mark.anyio
async def test_ls_name_and_info_with_stats(binary_service: str) -> None:
    url = binary_service
    listed = (await acli("ls", "greeter", "--json", "-s", url)).json()
    assert [d["name"] for d in listed] == ["greeter"]
    text = await acli("list", "bin", "-s", url)
    assert text.code == 0
    assert "greeter" not in text.out
    assert "bin" in text.out
    none = await acli("ls", "ghost", "-s", url)
    assert (none.code, none.out) == (0, "no service 'ghost' found\n")
    for argv in (["info", "greeter", "--stats"], ["stats", "greeter", "--info"]):
        both = await acli(*argv, "-s", url)
        assert both.code == 0, both.err
        assert "Service: greeter 1.0.0" in both.out
        assert "QUEUE GROUP" in both.out  # the INFO part
        assert "REQUESTS" in both.out  # the STATS part
        documents = (await acli(*argv, "--json", "-s", url)).json()
        assert [sorted(d) for d in documents] == [["info", "stats"]]
        assert documents[0]["info"]["id"] == documents[0]["stats"]["id"]
        assert documents[0]["stats"]["type"] == "io.nats.micro.v1.stats_response"


# ---------------------------------------------------------------------- real servers


@pytest.mark.nats
@pytest.mark.anyio
async def test_user_and_password(tmp_path: Path) -> None:
    config = f'authorization {{ user: "alice", password: "{PASSWORD}" }}\n'
    async with (
        _server(tmp_path, config) as server,
        demo_on(server.url, user="alice", password=PASSWORD) as instance,
    ):
        hostport = _hostport(server.url)  # no scheme, as natscli takes it
        run = await acli("ls", "-s", hostport, "--user", "alice", "--password", PASSWORD)
        assert run.code == 0, run.err
        assert instance in run.out
        reply = await acli(
            "request", "greeter.hello", "you", "-s", hostport, "--user", "alice",
            "--password", PASSWORD,
        )  # fmt: skip
        assert reply.out == "Hello, you!"
        wrong = await acli("ls", "-s", hostport, "--user", "alice", "--password", WRONG)
        assert wrong.code == 1
        assert wrong.err.count("\n") == 1
        assert "authorization" in wrong.err.lower()
        in_url = await acli("ls", "-s", f"nats://alice:{WRONG}@{hostport}")
        assert in_url.code == 1
        assert f"nats://alice:{REDACTED}@{hostport}" in in_url.err
        none = await acli("ls", "-s", hostport)
        assert none.code == 1


@pytest.mark.nats
@pytest.mark.anyio
async def test_a_nats_cli_context_with_credentials(tmp_path: Path, config_home: Path) -> None:
    config = f'authorization {{ user: "alice", password: "{PASSWORD}" }}\n'
    async with (
        _server(tmp_path, config) as server,
        demo_on(server.url, user="alice", password=PASSWORD) as instance,
    ):
        write_context(
            config_home, "lab", url=_hostport(server.url), user="alice", password=PASSWORD
        )
        named = await acli("info", "greeter", "--context", "lab", "--json")
        assert named.code == 0, named.err
        assert [d["id"] for d in named.json()] == [instance]
        (config_home / "nats" / "context.txt").write_text("lab\n")
        selected = await acli("ping", "greeter")
        assert selected.code == 0, selected.err
        assert instance in selected.out
        ignored = await acli("ls", "--no-context", "-s", server.url)
        assert ignored.code == 1  # no credentials without the context
        assert "authorization" in ignored.err.lower()
        write_context(config_home, "bad", url=server.url, user="alice", password=WRONG)
        rejected = await acli("ls", "--context", "bad")
        assert rejected.code == 1
        assert rejected.err.count("\n") == 1


@pytest.mark.nats
@pytest.mark.anyio
async def test_an_nkey(tmp_path: Path, config_home: Path) -> None:
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(NKEY_SEED + "\n")
    config = f'authorization {{ users = [ {{ nkey: "{NKEY_PUBLIC}" }} ] }}\n'
    async with (
        _server(tmp_path, config) as server,
        demo_on(server.url, nkeys_seed_str=NKEY_SEED) as instance,
    ):
        with_nkey = await acli("ls", "-s", server.url, "--nkey", str(seed_file))
        assert with_nkey.code == 0, with_nkey.err
        assert instance in with_nkey.out
        write_context(config_home, "nk", url=server.url, nkey=str(seed_file))
        assert (await acli("ls", "--context", "nk")).code == 0
        assert (await acli("ls", "-s", server.url)).code == 1


@pytest.mark.nats
@pytest.mark.anyio
async def test_a_token(tmp_path: Path, config_home: Path) -> None:
    config = f'authorization {{ token: "{TOKEN}" }}\n'
    async with _server(tmp_path, config) as server, demo_on(server.url, token=TOKEN) as instance:
        as_user = await acli("ls", "-s", server.url, "--user", TOKEN)  # natscli: user = token
        assert as_user.code == 0, as_user.err
        assert instance in as_user.out
        write_context(config_home, "tok", url=server.url, token=TOKEN)
        assert (await acli("ls", "--context", "tok")).code == 0
        in_url = await acli("ls", "-s", server.url.replace("nats://", f"nats://{WRONG}@"))
        assert in_url.code == 1
        assert f"nats://{REDACTED}@" in in_url.err


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _keypair(prefix: int) -> tuple[Any, str, str]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(bytearray(seed))
    return pair, pair.public_key.decode(), seed.decode()


def _jwt(signer: Any, issuer: str, subject: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (v2 claims, ed25519-nkey), as nsc issues them."""
    claims = {"jti": "", "iat": int(time.time()), "iss": issuer, "sub": subject, "nats": nats}
    digest = hashlib.sha256(json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


def _operator_mode(directory: Path) -> tuple[str, Path, str]:
    """A server configuration of decentralised auth (operator, account, memory resolver)
    and a user's ``.creds`` file: ``(server config, creds path, the user's seed)``."""
    operator, operator_public, _ = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
    account, account_public, _ = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _user, user_public, user_seed = _keypair(nkeys.PREFIX_BYTE_USER)
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1}
    operator_jwt = _jwt(
        operator, operator_public, operator_public, {"type": "operator", "version": 2}
    )
    account_jwt = _jwt(
        operator,
        operator_public,
        account_public,
        {"limits": {**unlimited, "wildcards": True, "conn": -1}, "type": "account", "version": 2},
    )
    user_claims = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
    user_jwt = _jwt(
        account, account_public, user_public, {**user_claims, "type": "user", "version": 2}
    )
    creds = directory / "user.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n"
    )
    config = (
        f'operator: "{operator_jwt}"\nresolver: MEMORY\n'
        f'resolver_preload: {{\n  {account_public}: "{account_jwt}"\n}}\n'
    )
    return config, creds, user_seed


@pytest.mark.nats
@pytest.mark.anyio
async def test_a_creds_file(tmp_path: Path, config_home: Path) -> None:
    config, creds, seed = _operator_mode(tmp_path)
    async with (
        _server(tmp_path, config) as server,
        demo_on(server.url, user_credentials=str(creds)) as instance,
    ):
        run = await acli("ls", "-s", _hostport(server.url), "--creds", str(creds))
        assert run.code == 0, run.err
        assert instance in run.out
        write_context(config_home, "ngs", url=server.url, creds=str(creds))
        by_context = await acli("stats", "greeter", "--context", "ngs")
        assert by_context.code == 0, by_context.err
        without = await acli("ls", "-s", server.url)
        assert without.code == 1
        for outcome in (run, by_context, without):
            assert seed not in outcome.out + outcome.err


@pytest.mark.nats
@pytest.mark.anyio
async def test_tls_and_mutual_tls(tmp_path: Path, config_home: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client.example")
    files = {
        "ca.pem": ca.cert_pem,
        "server.pem": server_cert.cert_chain_pems[0],
        "server-key.pem": server_cert.private_key_pem,
        "client.pem": client_cert.cert_chain_pems[0],
        "client-key.pem": client_cert.private_key_pem,
    }
    for name, blob in files.items():
        blob.write_to_path(str(tmp_path / name))
    config = (
        f'tls {{\n  cert_file: "{tmp_path / "server.pem"}"\n'
        f'  key_file: "{tmp_path / "server-key.pem"}"\n'
        f'  ca_file: "{tmp_path / "ca.pem"}"\n  verify: true\n}}\n'
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    client_cert.configure_cert(context)
    async with _server(tmp_path, config) as server:
        url = server.url.replace("nats://", "tls://")
        async with demo_on(url, tls=context) as instance:
            flags = ["--tlsca", str(tmp_path / "ca.pem")]
            mutual = [
                *flags,
                "--tlscert",
                str(tmp_path / "client.pem"),
                "--tlskey",
                str(tmp_path / "client-key.pem"),
            ]
            run = await acli("ls", "-s", url, *mutual)
            assert run.code == 0, run.err
            assert instance in run.out
            no_cert = await acli("ls", "-s", url, *flags)
            assert no_cert.code == 1
            assert no_cert.err.count("\n") == 1
            assert "tls" in no_cert.err.lower()
            untrusted = await acli("ls", "-s", url)  # the system's trust store
            assert untrusted.code == 1
            assert "certificate" in untrusted.err.lower()
            write_context(
                config_home,
                "secure",
                url=url,
                ca=str(tmp_path / "ca.pem"),
                cert=str(tmp_path / "client.pem"),
                key=str(tmp_path / "client-key.pem"),
            )
            by_context = await acli("info", "greeter", "--context", "secure", "--stats")
            assert by_context.code == 0, by_context.err
            assert instance in by_context.out
