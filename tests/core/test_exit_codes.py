"""Every failure is one ``error:`` line and a code of README's exit-code table (issue 15, item 5).

Reproductions of the defects the issue lists (each failed on the main of issue 15): a platform that
cannot be reached (DNS, refused, reset, TLS, timeout) in every command that calls one, a busy port,
``--debug`` that turned every code into 1, a reader of stdout that went away; then a property-based
test that feeds every command random arguments. Deep nesting, non-finite numbers and out-of-range ids
are cases of the bad-input corpus (tests/data/bad/cases.json).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import click
import pytest
import requests
import responses
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segport import AuthError, ExitStatus, Registry, RunContext, UnknownAudienceError
from segport.cli import cli
from segport.errors import PlatformUnreachable
from segport.http import ApiClient, ApiError
from segport.plugins import make_manager
from segport.registry import set_default_registry
from segport.testing.fakes import MemoryPlatform, memory_destination
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.auth import CampaignMonitorAuth, CampaignMonitorOAuth
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.auth import MailchimpAuth, MailchimpOAuth

from ..conftest import FAST_RETRY

README = Path(__file__).resolve().parents[2] / "README.md"
MC_KEY = "0123456789abcdef0123456789abcdef-us1"
CM_KEY = "c" * 32


def documented_codes() -> set[int]:
    """The codes of README's "Exit codes" table."""
    text = README.read_text(encoding="utf-8")
    table = text.split("### Exit codes", 1)[1].split("\n### ", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}


def test_every_exit_status_is_documented() -> None:
    assert documented_codes() == {int(status) for status in ExitStatus}
    assert ExitStatus.UNREACHABLE == 15


# -- places nothing answers as it should ------------------------------------------------------------
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Listener:
    """A loopback TCP server that does ``behaviour`` with each connection: "silent" or "reset"."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "reset":
                conn.recv(65536)
                conn.close()
            else:  # read the request, never answer
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def listener() -> Iterator[Callable[[str], Listener]]:
    made: list[Listener] = []

    def make(behaviour: str) -> Listener:
        made.append(Listener(behaviour))
        return made[-1]

    yield make
    for item in made:
        item.close()


class Example(ApiClient):
    platform = "Example"
    path_suffix = ".json"


@pytest.mark.parametrize(
    ("fault", "reason", "kind"),
    [
        ("dns", "its name does not resolve (DNS)", requests.ConnectionError),
        ("refused", "the connection was refused", requests.ConnectionError),
        ("reset", "the connection was reset", requests.ConnectionError),
        ("tls", "the TLS handshake failed", requests.exceptions.SSLError),
        ("timeout", "no answer within the timeout", requests.ReadTimeout),
    ],
)
def test_a_transport_failure_names_the_host_the_call_and_the_fix(
    fault: str, reason: str, kind: type[Exception], listener: Callable[[str], Listener]
) -> None:
    if fault == "dns":
        base, host = "https://nonexistent.invalid/api", "nonexistent.invalid"
    elif fault == "refused":
        port = closed_port()
        base, host = f"http://127.0.0.1:{port}/api", f"127.0.0.1:{port}"
    else:
        port = listener("reset" if fault in ("reset", "tls") else "silent").port
        scheme = "https" if fault == "tls" else "http"
        base, host = f"{scheme}://127.0.0.1:{port}/api", f"127.0.0.1:{port}"
    with requests.Session() as session:
        client = Example(session, base, timeout=(2.0, 0.5))
        with pytest.raises(PlatformUnreachable) as caught:
            client.call("GET", "/lists/{list_id}", list_id="secret-id")
    error = caught.value
    assert isinstance(error, kind)  # still what plugins catch: "except requests.ConnectionError" keeps working
    assert str(error) == (
        f"cannot reach Example at {host} on GET /lists/{{list_id}}.json ({reason}): "
        "check the network (and any proxy) and the connection's base URL, then try again"
    )
    assert error.exit_status == ExitStatus.UNREACHABLE


# -- the CLI on a workspace with real plugins -------------------------------------------------------
@pytest.fixture
def real(home: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``real(*args)``: the CLI as ada on a new workspace with the memory, Mailchimp and CM destinations."""
    monkeypatch.setattr("segport.workspace.make_manager", lambda: make_manager(autoload=False))
    monkeypatch.setattr("segport.workspace.RetryPolicy", lambda: FAST_RETRY)
    registry = Registry.from_plugins(
        [memory_destination(MemoryPlatform(), batch_size=10), MailchimpDestination, CampaignMonitorDestination]
    )
    set_default_registry(registry)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home), "--as", "ada", *args], catch_exceptions=True)

    assert CliRunner().invoke(cli, ["--home", str(home), "init", "--admin", "ada"]).exit_code == 0
    yield invoke
    set_default_registry(None)


def assert_one_line(result: Result, status: int, *parts: str) -> str:
    assert result.exit_code == status, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def unreachable_config(kind: str, fault: str) -> tuple[dict[str, Any], str]:
    """A connection config whose platform does not answer (``dns`` or ``refused``), and its host."""
    if fault == "dns":
        base, host = "https://nonexistent.invalid", "nonexistent.invalid"
    else:
        port = closed_port()
        base, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
    if kind == "mailchimp":
        return {"api_key": MC_KEY, "api_base_url": base + "/3.0"}, host
    return {"api_key": CM_KEY, "api_base_url": base}, host


PLATFORMS = [("mailchimp", "Mailchimp", "GET /ping"), ("campaignmonitor", "Campaign Monitor", "GET /clients.json")]


@pytest.mark.parametrize("fault", ["dns", "refused"])
@pytest.mark.parametrize(("kind", "platform", "call"), PLATFORMS)
def test_connections_add_and_test_with_the_platform_unreachable(
    real: Callable[..., Result], kind: str, platform: str, call: str, fault: str
) -> None:
    """Issue 15: ~100 lines of requests.ConnectionError and exit 1, the README's own example run offline."""
    config, host = unreachable_config(kind, fault)
    add = ["connections", "add", "c", "--type", kind, "--config", json.dumps(config), "--agree-privacy"]
    expected = f"error: cannot reach {platform} at {host} on {call} ("
    line = assert_one_line(real(*add), ExitStatus.UNREACHABLE, expected, "check the network")
    assert MC_KEY not in line and CM_KEY not in line
    assert real("connections", "list", "--json").stdout.strip() == "[]"  # nothing was added

    assert real(*add, "--no-check").exit_code == 0
    assert_one_line(real("connections", "test", "c"), ExitStatus.UNREACHABLE, expected)
    debug = real("--debug", "connections", "test", "c")
    assert debug.exit_code == ExitStatus.UNREACHABLE  # --debug used to turn it into 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith(expected)


@pytest.mark.parametrize(("kind", "platform"), [("mailchimp", "Mailchimp"), ("campaignmonitor", "Campaign Monitor")])
def test_an_export_run_with_the_platform_unreachable(
    real: Callable[..., Result], make_profiles: Any, kind: str, platform: str
) -> None:
    config, host = unreachable_config(kind, "refused")
    option = "audience_id=abc123" if kind == "mailchimp" else f"list_id={'a' * 32}"
    for step in (
        ("profiles", "load", str(make_profiles(3))),
        ("segments", "define", "all", "--where", "email is not empty"),
        ("connections", "add", "c", "--type", kind, "--config", json.dumps(config), "--agree-privacy", "--no-check"),
        ("exports", "add", "e", "--connection", "c", "--segment", "all", "--email", "email", "--option", option),
    ):
        assert real(*step).exit_code == 0, step
    expected = f"cannot reach {platform} at {host} on GET /"
    line = assert_one_line(real("exports", "run", "e"), ExitStatus.UNREACHABLE, expected)
    run = json.loads(real("runs", "list", "--json").stdout)[0]
    assert run["status"] == "failed" and f"error: {run['error']}" == line


@pytest.mark.parametrize(
    ("flow", "platform", "call"),
    [(MailchimpOAuth(), "Mailchimp's login server", "POST /oauth2/token"),
     (CampaignMonitorOAuth(), "Campaign Monitor's login server", "POST /oauth/token")],
    ids=["mailchimp", "campaignmonitor"],
)
def test_an_oauth_token_exchange_with_the_login_host_unreachable(flow: Any, platform: str, call: str) -> None:
    port = closed_port()
    config = {"client_id": "app", "client_secret": "s3cret-value", "oauth_base_url": f"http://127.0.0.1:{port}"}
    with requests.Session() as session, pytest.raises(PlatformUnreachable) as caught:
        flow.exchange(session, config, "the-code", "http://127.0.0.1:1/callback")
    assert str(caught.value).startswith(f"cannot reach {platform} at 127.0.0.1:{port} on {call} (the connection was")
    assert "s3cret-value" not in str(caught.value) and "the-code" not in str(caught.value)


# -- errors that name the call -----------------------------------------------------------------------
CM_BASE = "https://api.createsend.com/api/v3.3"
LIST_ID = "a" * 32
NOT_FOUND = {"Code": 404, "Message": "Not Found"}


@pytest.mark.parametrize(
    "failing",
    ["GET /lists/{list_id}.json", "GET /lists/{list_id}/customfields.json", "GET /lists/{list_id}/segments.json"],
)
def test_a_campaign_monitor_preflight_failing_on_one_call_names_it(failing: str) -> None:
    """Issue 15: "Campaign Monitor answered 404 (code 404: Not Found)" did not say which call failed."""
    answers = {
        "GET /lists/{list_id}.json": {"ListID": LIST_ID, "Title": "News"},
        "GET /lists/{list_id}/customfields.json": [],
        "GET /lists/{list_id}/segments.json": [],
    }
    config = {"api_key": CM_KEY, "api_base_url": CM_BASE}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps, requests.Session() as session:
        for call, body in answers.items():
            url = CM_BASE + call.split(" ")[1].replace("{list_id}", LIST_ID)
            rsps.get(url, status=404, json=NOT_FOUND) if call == failing else rsps.get(url, json=body)
        rsps.get(f"{CM_BASE}/clients.json", json=[])
        session.auth = CampaignMonitorAuth(config)
        context = RunContext("e", {"list_id": LIST_ID}, ["vip"], [])
        writer = CampaignMonitorDestination().writer(session, config, context)
        with pytest.raises((ApiError, UnknownAudienceError)) as caught:
            writer.prepare()
    assert failing in str(caught.value), str(caught.value)
    assert "404" in str(caught.value)


@pytest.mark.parametrize(
    ("auth", "url", "call"),
    [
        (CampaignMonitorAuth({"api_key": CM_KEY, "api_base_url": CM_BASE}), f"{CM_BASE}/clients.json",
         "GET /clients.json"),
        (MailchimpAuth({"api_key": MC_KEY}), "https://us1.api.mailchimp.com/3.0/ping", "GET /ping"),
    ],
    ids=["campaignmonitor", "mailchimp"],
)
def test_a_refused_credentials_check_names_its_call(auth: Any, url: str, call: str) -> None:
    with responses.RequestsMock() as rsps, requests.Session() as session:
        rsps.get(url, status=404, json={**NOT_FOUND, "title": "Resource Not Found", "detail": "no such route"})
        session.auth = auth
        with pytest.raises(AuthError) as caught:
            auth.check(session)
    assert call in str(caught.value) and "404" in str(caught.value)


# -- busy ports, closed pipes -------------------------------------------------------------------------
def test_a_sandbox_on_a_busy_port_is_one_line() -> None:
    """Issue 15: ``segport sandbox`` on a port in use printed an OSError traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["sandbox", "mailchimp", "--port", str(port)])
        assert_one_line(result, ExitStatus.CONFIG_ERROR, f"port {port} on 127.0.0.1 is in use", "--port 0")
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from segport_mailchimp.sandbox.server import main; "
             f"sys.exit(main(['--port', '{port}']))"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert done.returncode == ExitStatus.CONFIG_ERROR, done.stderr
    assert done.stderr.strip().endswith(f"error: port {port} on 127.0.0.1 is in use: pass another --port, or "
                                        "--port 0 for any free one")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""


def test_a_reader_that_goes_away_ends_the_command_quietly(home: Path, database_url: str | None) -> None:
    """Issue 15: ``segport audit list | head -1`` exited 1 (click's EPIPE handling)."""
    segport = [sys.executable, "-m", "segport", "--home", str(home)]
    env = {**os.environ, "SEGPORT_USER": "ada"}
    subprocess.run([*segport, "init", "--admin", "ada"], check=True, capture_output=True, env=env, timeout=120)
    child = subprocess.Popen([*segport, "audit", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # like head -1 after its line: the reader is gone before segport writes
    with child.stderr:
        errors = child.stderr.read().decode()
    assert child.wait(timeout=120) == ExitStatus.OK, errors
    assert errors == ""


# -- every command, random arguments ------------------------------------------------------------------
SERVERS = {"demo", "sandbox", "scheduler", "worker", "connections auth"}  # they serve or wait until stopped
NAMES = ["fr", "vip", "mem", "mc", "cm", "e1", "mc1", "cm1", "ada", "carl", "nope", "admin", "memory", "mailchimp"]


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if " ".join(path) in SERVERS:
            continue
        if isinstance(command, click.Group):
            found += leaf_commands(command, path)
        else:
            found.append((path, command))
    return found


COMMANDS = leaf_commands(cli)


def deep_json(depth: int, kind: str = "list") -> str:
    """A JSON array (or object) nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


plain_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
values = st.one_of(
    st.sampled_from(NAMES),
    plain_text,
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "-1", "9" * 30, "9" * 5000, "nan", "inf", "-inf", "1e999", "NaN", "true", "null"]),
    st.integers(1, 6000).map(deep_json),
    st.integers(1, 300).map(lambda d: deep_json(d, "object")),
    st.sampled_from(["audience_id", "list_id", "tag_prefix", "FNAME", "api_key", "timeout_s"]).flatmap(
        lambda key: st.one_of(st.integers(1, 6000).map(deep_json), plain_text, st.just("NaN")).map(
            lambda v: f"{key}={v}"
        )
    ),
    st.sampled_from(["country = 'FR'", "age >= 18 and (", "`", "email contains '@'", "((((" * 300]),
    st.sampled_from(["0 3 * * *", "0 0 30 2 *", "* * * * * *", "61 * * * *"]),
    st.sampled_from(['{"api_key": "0123456789"}', '{"api_key": "0123456789", "x": NaN}', "{", "[]", "-"]),
)


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    path, command = draw(st.sampled_from(COMMANDS))
    args = ["--debug"] if draw(st.booleans()) and draw(st.booleans()) else []
    args += list(path)
    for param in command.params:
        if param.name == "help":
            continue
        if isinstance(param, click.Argument):
            count = 1 if param.nargs == 1 else draw(st.integers(1, 3))
            if param.required or draw(st.booleans()):
                args += [draw(values) for _ in range(count)]
            continue
        assert isinstance(param, click.Option)
        if not (param.required or draw(st.integers(0, 2)) == 0):
            continue
        flag = param.opts[0]
        if param.is_flag:
            args.append(flag)
        elif isinstance(param.type, click.Choice) and draw(st.booleans()):
            args += [flag, draw(st.sampled_from(list(param.type.choices)))]
        else:
            for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
                args += [flag, draw(values)]
    return args


@pytest.fixture
def corpus_workspace(real: Callable[..., Result], make_profiles: Any, tmp_path: Path) -> Callable[..., Result]:
    """Profiles, segments fr and vip, connections mem (memory), mc and cm (nobody answers), exports on each."""
    keys = tmp_path / "vip.txt"
    keys.write_text("p000001\np000002\n", encoding="utf-8")
    loopback = f"http://127.0.0.1:{closed_port()}"
    export = ["--segment", "fr", "--email", "email"]
    for step in (
        ("users", "add", "carl", "--role", "contributor"),
        ("profiles", "load", str(make_profiles(9))),
        ("segments", "define", "fr", "--where", "country = 'FR'"),
        ("segments", "load", "vip", str(keys)),
        ("connections", "add", "mem", "--type", "memory", "--config", '{"api_key": "0123456789"}', "--agree-privacy"),
        ("connections", "add", "mc", "--type", "mailchimp", "--agree-privacy", "--no-check", "--config",
         json.dumps({"api_key": MC_KEY, "api_base_url": loopback + "/3.0"})),
        ("connections", "add", "cm", "--type", "campaignmonitor", "--agree-privacy", "--no-check", "--config",
         json.dumps({"api_key": CM_KEY, "api_base_url": loopback})),
        ("exports", "add", "e1", "--connection", "mem", *export, "--option", "audience_id=aud1"),
        ("exports", "add", "mc1", "--connection", "mc", *export, "--option", "audience_id=abc123"),
        ("exports", "add", "cm1", "--connection", "cm", *export, "--option", f"list_id={'a' * 32}"),
        ("exports", "run", "e1"),
    ):
        assert real(*step).exit_code == 0, (step, real(*step).output)
    return real


def test_every_command_with_random_arguments_fails_in_one_documented_line(
    corpus_workspace: Callable[..., Result],
) -> None:
    codes = documented_codes()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(args=argv())
    def check(args: list[str]) -> None:
        result = corpus_workspace(*args)
        assert result.exit_code in codes, (args, result.exit_code, result.output[-2000:])
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exc_info)
        if result.exit_code == 0:
            return
        lines = result.stderr.splitlines()
        assert lines and lines[-1].startswith("error: "), (args, result.stderr[-2000:])
        if "--debug" not in args:
            assert len(lines) == 1, (args, result.stderr[-2000:])
            assert "Traceback" not in result.output

    check()


@pytest.mark.parametrize("option", ["--fail-rate", "--member-fail-rate", "--hold-s"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_sandbox_fault_numbers_must_be_finite(option: str, value: str) -> None:
    from click.testing import CliRunner

    from segport.cli import cli

    result = CliRunner().invoke(cli, ["sandbox", "mailchimp", "--port", "0", option, value])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert option in result.output


@pytest.mark.parametrize("debug", [(), ("--debug",)])
def test_an_error_naming_a_typed_path_with_a_line_break_stays_one_line(tmp_path: Path, debug: tuple[str, ...]) -> None:
    """A carriage return or line feed in a typed path is escaped in the error line, not printed."""
    home = tmp_path / "a\rb\nc"
    result = CliRunner().invoke(cli, [*debug, "--home", str(home), "--as", "ada", "users", "list"])
    assert result.exit_code == ExitStatus.WORKSPACE_ERROR, result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: ") and "a\\rb\\nc" in last, result.stderr
    if not debug:
        assert len(result.stderr.splitlines()) == 1, result.stderr
