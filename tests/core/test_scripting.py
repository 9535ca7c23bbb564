"""Issue 16, scripting: --json failures, global options after the command, "did you mean", readable
human output, help on every command and option, and shell completion."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import click
import pytest
import requests
from click.testing import CliRunner, Result

from segport import ExitStatus, NotFound, Workspace
from segport.cli import cli
from segport.cli._globals import GLOBAL_OPTIONS
from segport.hookspecs import hookimpl
from segport.plugins import make_manager
from segport.services.names import close_names, visible_names

KEY = "memory-key-0001"
CONFIG = json.dumps({"api_key": KEY})


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def commands(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and group of the tree (hidden ones too), with its path, depth first."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from commands(command.commands[name], (*path, name))


LEAVES = [path for path, command in commands() if not isinstance(command, click.Group)]


@pytest.fixture
def sp(run_cli: Any) -> Callable[..., Result]:
    """The CLI in a workspace created by ``segport init --admin ada`` (no acting user unless given)."""
    ok(run_cli("init", "--admin", "ada"))
    return run_cli  # type: ignore[no-any-return]


@pytest.fixture
def populated(sp: Callable[..., Result], tmp_path: Path) -> Callable[..., Result]:
    """Profiles (one with a true and a null attribute), segments Newsletter and fr, users carl and vera,
    connections mem (admins) and shared-mem (contributors), export e1 with a mapping and a schedule, run once."""
    profiles = tmp_path / "profiles.jsonl"
    rows = [{"id": f"p{i}", "email": f"p{i}@example.org", "first_name": f"F{i}", "country": "FR", "vip": i == 0,
             "note": None} for i in range(4)]
    profiles.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    keys = tmp_path / "news.txt"
    keys.write_text("p1\np2\n", encoding="utf-8")
    for step in (
        ("profiles", "load", str(profiles)),
        ("segments", "define", "fr", "--where", "country = 'FR'"),
        ("segments", "load", "Newsletter", str(keys)),
        ("users", "add", "carl", "--role", "contributor"),
        ("users", "add", "vera", "--role", "viewer"),
        ("connections", "add", "mem", "--type", "memory", "--config", CONFIG, "--agree-privacy"),
        ("connections", "add", "shared-mem", "--type", "memory", "--config", CONFIG, "--agree-privacy",
         "--share", "contributors"),
        ("exports", "add", "e1", "--connection", "mem", "--segment", "fr", "--email", "email",
         "--map", "FNAME=first_name", "--option", "audience_id=aud1", "--schedule", "0 3 * * *"),
        ("exports", "run", "e1"),
        ("schedule", "set", "0 4 * * *"),
    ):
        ok(sp("--as", "ada", *step))
    return sp


def one_json(result: Result) -> Any:
    """The single JSON document on stdout (json.loads refuses a second one)."""
    return json.loads(result.stdout)


def assert_json_failure(result: Result, code: int, status: str) -> dict[str, Any]:
    """A --json failure: one JSON object on stdout with the exit code, and the same one line on stderr."""
    assert result.exit_code == code, (result.exit_code, result.output)
    document = one_json(result)
    error = document["error"]
    assert error["code"] == code and error["status"] == status, document
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {error['message']}", result.stderr
    assert "Traceback" not in result.output
    return document  # type: ignore[no-any-return]


# -- 1. --json: one JSON document, a failure too -------------------------------------------------
def test_connections_test_json_failure_is_an_error_object(populated: Callable[..., Result],
                                                          platform: Any) -> None:
    platform.valid_keys = {"another-key-0000"}
    result = populated("--as", "ada", "connections", "test", "mem", "--json")
    assert_json_failure(result, ExitStatus.AUTH_ERROR, "AUTH_ERROR")
    unknown = assert_json_failure(populated("connections", "test", "nosuch", "--as", "ada", "--json"),
                                  ExitStatus.NOT_FOUND, "NOT_FOUND")
    assert "unknown connection 'nosuch'" in unknown["error"]["message"]


@pytest.mark.sqlite_only("the CLI's parsing and error boundary, the same for both stores")
@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_command_json_failure_is_one_error_object(sp: Callable[..., Result], path: tuple[str, ...]) -> None:
    if path != ("plugins", "check"):  # which passes unknown options on to pytest
        usage = sp(*path, "--json", "--no-such-option")
        assert_json_failure(usage, ExitStatus.USAGE, "USAGE")
        assert_json_failure(sp("--json", *path, "--no-such-option"), ExitStatus.USAGE, "USAGE")  # global --json
    if path in (("demo",), ("serve",)):
        return  # demo succeeds at length here (it needs nothing); serve serves until stopped (tests/web)
    result = sp(*path, "--json")  # no acting user, no arguments: most fail, each its own way
    if result.exit_code == 0:
        one_json(result)
    else:
        assert_json_failure(result, result.exit_code, ExitStatus(result.exit_code).name)


def test_a_failed_run_is_one_json_object_with_its_record(populated: Callable[..., Result], platform: Any) -> None:
    platform.valid_keys = {"another-key-0000"}
    document = assert_json_failure(populated("--as", "ada", "exports", "run", "e1", "--full", "--json"),
                                   ExitStatus.AUTH_ERROR, "AUTH_ERROR")
    assert document["run"]["status"] == "failed" and document["run"]["export"] == "e1"
    refresh = assert_json_failure(populated("--as", "ada", "refresh", "--json"), ExitStatus.RUN_FAILED, "RUN_FAILED")
    assert [r["status"] for r in refresh["results"]] == ["failed"]


@pytest.mark.sqlite_only("the CLI's error boundary, the same for both stores")
@pytest.mark.parametrize(("raised", "code", "status"), [
    (KeyboardInterrupt(), 130, "INTERRUPTED"),
    (RuntimeError("detail-0x5eed"), ExitStatus.ERROR, "ERROR"),
    (requests.ConnectionError("refused"), ExitStatus.UNREACHABLE, "UNREACHABLE"),
])
def test_interrupts_bugs_and_unreachable_platforms_are_json_errors(
    populated: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, raised: BaseException, code: int, status: str
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(Workspace, "list_users", boom)
    document = assert_json_failure(populated("users", "list", "--as", "ada", "--json"), code, status)
    assert "detail-0x5eed" not in document["error"]["message"]  # an internal error's detail stays out


def test_commands_that_had_no_json_print_one_document(populated: Callable[..., Result]) -> None:
    def run(*args: str) -> Any:
        return one_json(ok(populated("--as", "ada", *args, "--json")))

    assert "personal data" in run("connections", "notice")["notice"]
    assert run("connections", "set-cap", "mem", "500")["profile_cap"] == 500
    assert run("exports", "disable", "e1")["enabled"] is False
    assert run("exports", "enable", "e1")["enabled"] is True
    assert run("schedule", "set", "0 5 * * *") == {"refresh": "0 5 * * *"}
    assert "_SEGPORT_COMPLETE" in run("completion", "bash")["script"]
    ok(populated("--as", "ada", "segments", "define", "tmp", "--where", "country = 'DE'"))
    assert run("segments", "remove", "tmp", "--yes") == {"removed": "segment", "name": "tmp"}
    assert run("users", "remove", "vera", "--yes") == {"removed": "user", "name": "vera", "role": "viewer"}
    assert run("exports", "remove", "e1", "--yes") == {"removed": "export", "name": "e1"}
    removed = run("connections", "remove", "mem", "--yes")
    assert removed == {"removed": "connection", "name": "mem", "detached_exports": 0}


# -- 2. global options after the command -----------------------------------------------------------
def test_every_command_takes_the_global_options_after_it() -> None:
    for path, command in commands():
        opts = [opt for param in command.params for opt in (*param.opts, *param.secondary_opts)]
        assert len(opts) == len(set(opts)), (path, opts)  # none shadowed: each option name once
        if not path or command.ignore_unknown_options:
            continue  # the group itself; plugins check, whose other words go to pytest (its own --json stays)
        for flag in GLOBAL_OPTIONS:
            assert flag in opts, (path, flag)
    assert "--json" in [opt for param in cli.commands["plugins"].commands["check"].params for opt in param.opts]


def test_global_options_after_the_command_act(populated: Callable[..., Result], home: Path, tmp_path: Path) -> None:
    listed = one_json(ok(populated("exports", "list", "--as", "ada", "--json")))
    assert [e["name"] for e in listed] == ["e1"]
    assert one_json(ok(populated("--json", "--as", "ada", "users", "list")))[0]["name"] == "ada"  # --json before too
    denied = populated("users", "add", "zoe", "--role", "viewer", "--as", "vera")
    assert denied.exit_code == ExitStatus.PERMISSION_DENIED and "'vera' (viewer)" in denied.stderr
    before = populated("--as", "vera", "exports", "show", "e1", "--as", "ada", "--json")  # the later one wins
    assert one_json(ok(before))["name"] == "e1"
    elsewhere = populated("users", "list", "--as", "ada", "--home", str(tmp_path / "nowhere"))
    assert elsewhere.exit_code == ExitStatus.WORKSPACE_ERROR or elsewhere.exit_code == 0  # PostgreSQL keeps its URL
    debug = populated("exports", "show", "nosuch", "--as", "ada", "--debug")
    assert debug.exit_code == ExitStatus.NOT_FOUND and "Traceback" in debug.stderr
    sandbox_json = CliRunner().invoke(cli, ["sandbox", "nosuch", "--json"])  # its own --json marks JSON too
    assert_json_failure(sandbox_json, ExitStatus.PLUGIN_ERROR, "PLUGIN_ERROR")


@pytest.mark.sqlite_only("--home and --database-url after the command on a SQLite workspace")
def test_home_and_database_url_after_the_command(populated: Callable[..., Result], home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    moved = runner.invoke(cli, ["users", "list", "--as", "ada", "--home", str(home), "--json"])
    assert [u["name"] for u in one_json(ok(moved))] == ["ada", "carl", "vera"]
    other = runner.invoke(cli, ["users", "list", "--home", str(home), "--as", "ada", "--database-url",
                                f"sqlite:///{tmp_path / 'none.db'}", "--json"])
    assert_json_failure(other, ExitStatus.WORKSPACE_ERROR, "WORKSPACE_ERROR")


# -- 3. did you mean -------------------------------------------------------------------------------
def test_close_names_ignore_case_and_offer_at_most_three() -> None:
    assert close_names("newsleter", ["Newsletter", "VIP"]) == ["Newsletter"]
    assert close_names("vip", ["VIP", "vips"]) == ["VIP", "vips"]
    assert close_names("zzz", ["Newsletter"]) == []
    assert len(close_names("e", ["e1", "e2", "e3", "e4"])) <= 3


def test_unknown_names_suggest_close_ones_in_the_service_layer(ws: Workspace, act_as: Any, make_profiles: Any) -> None:
    ws.load_profiles(make_profiles(3))
    ws.define_segment("Newsletter", "country = 'FR'")
    ws.add_connection("admins-only", "memory", {"api_key": KEY}, agree_privacy=True)
    ws.add_connection("shared-one", "memory", {"api_key": KEY}, agree_privacy=True, share="contributors")
    ws.add_export("vip-export", connection="shared-one", segments=["Newsletter"], email_field="email",
                  options={"audience_id": "aud1"})
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: ws.remove_segment("newsleter"), "unknown segment 'newsleter': did you mean 'Newsletter'?"),
        (lambda: ws.exports.get(name="vip-exprot"), "unknown export 'vip-exprot': did you mean 'vip-export'?"),
        (lambda: ws.test_connection("admins-onyl"), "unknown connection 'admins-onyl': did you mean 'admins-only'?"),
        (lambda: ws.remove_user("carll"), "unknown user 'carll': did you mean 'carl'?"),
        (lambda: ws.add_export("x", connection="shared-one", segments=["newsletter"], email_field="email",
                               options={"audience_id": "aud1"}), "did you mean 'Newsletter'?"),
    ]
    for call, expected in cases:
        with pytest.raises(NotFound) as raised:
            call()
        assert expected in str(raised.value) and "(see 'segport " in str(raised.value), str(raised.value)
    with pytest.raises(NotFound) as unknown:
        ws.get_export("nothing-like-it")
    assert "did you mean" not in str(unknown.value)


def test_suggestions_never_name_what_the_user_may_not_see(ws: Workspace, act_as: Any, make_profiles: Any) -> None:
    ws.add_connection("admins-only", "memory", {"api_key": KEY}, agree_privacy=True)
    ws.add_connection("shared-one", "memory", {"api_key": KEY}, agree_privacy=True, share="contributors")
    carl = act_as("carl")
    assert visible_names(carl.context, "connection") == ["shared-one"]
    assert visible_names(ws.context, "connection") == ["admins-only", "shared-one"]
    with pytest.raises(NotFound) as raised:  # an unknown acting user learns no user name
        act_as("adaa").list_users()
    assert "did you mean" not in str(raised.value) and "'ada'" not in str(raised.value)
    assert visible_names(act_as("adaa").context, "user") == []

    class NoListing:
        @hookimpl
        def segport_permission(self, user: Any, action: str, resource: object) -> bool | None:
            return False if action == "exports.list" else None

    ws.load_profiles(make_profiles(3))
    ws.define_segment("all", "country = 'FR'")
    ws.add_export("vip-export", connection="shared-one", segments=["all"], email_field="email",
                  options={"audience_id": "aud1"})
    hidden = Workspace.open(ws.home, user="ada", registry=ws.registry, pm=make_manager(autoload=False,
                                                                                     plugins=[NoListing()]))
    try:
        with pytest.raises(NotFound) as refused:
            hidden.exports.export_for("exports.run", "vip-exprot")
        assert "did you mean" not in str(refused.value)
    finally:
        hidden.close()


def test_json_failure_lists_the_suggestions(populated: Callable[..., Result]) -> None:
    document = assert_json_failure(populated("segments", "remove", "newsleter", "--as", "ada", "--json"),
                                   ExitStatus.NOT_FOUND, "NOT_FOUND")
    assert document["error"]["suggestions"] == ["Newsletter"]
    human = populated("--as", "ada", "exports", "run", "E1")
    assert human.stderr.strip() == "error: unknown export 'E1': did you mean 'e1'? (see 'segport exports list')"


# -- 4. no Python reprs in human output ----------------------------------------------------------
REPR = re.compile(r"\{'|\['|\b(None|True|False)\b")
READ_COMMANDS = [
    ("users", "list"), ("connections", "list"), ("connections", "show", "mem"), ("connections", "show", "shared-mem"),
    ("connections", "test", "mem"), ("connections", "notice"), ("exports", "list"), ("exports", "show", "e1"),
    ("exports", "run", "e1", "--dry-run"), ("exports", "run", "e1"), ("runs", "list"), ("runs", "show", "1"),
    ("runs", "show", "2"), ("segments", "list"), ("profiles", "show", "p0"), ("profiles", "show", "p1"),
    ("audit", "list"), ("schedule", "show"), ("plugins", "list"), ("plugins", "show", "memory"), ("refresh",),
]


def test_human_output_has_no_python_reprs(populated: Callable[..., Result]) -> None:
    for args in READ_COMMANDS:
        shown = ok(populated("--as", "ada", *args)).stdout
        assert not REPR.search(shown), (args, shown)
    shown = ok(populated("--as", "ada", "profiles", "show", "p0")).stdout
    assert "vip: yes" in shown and "note: -" in shown
    export = ok(populated("--as", "ada", "exports", "show", "e1")).stdout
    assert "mapping:\n  FNAME: first_name" in export and "enabled: yes" in export


# -- 5. help on every command and option ---------------------------------------------------------
def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, command in commands():
        if command.hidden:
            continue
        if not (command.help or command.short_help):
            missing.append(" ".join(path) or "segport")
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert not missing, f"no help text: {missing}"


# -- 6. shell completion -------------------------------------------------------------------------
def complete(words: str, env: dict[str, str] | None = None, shell: str = "bash") -> list[str]:
    """What click's bash completion offers for the command line ``words`` (the last word is being typed)."""
    parts = words.split(" ")
    environ = {"_SEGPORT_COMPLETE": f"{shell}_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1),
               **(env or {})}
    result = CliRunner().invoke(cli, [], env=environ, prog_name="segport")
    assert result.exit_code == 0 and result.stderr == "", result.output
    if shell != "bash":  # zsh: type, value and help on lines of their own
        return result.stdout.splitlines()
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if "," in line]


def test_commands_and_options_complete() -> None:
    assert "exports" in complete("segport exp")
    assert complete("segport connections sh") == ["show"]
    assert "--json" in complete("segport exports list --")


def test_names_complete_from_the_workspace_as_the_user_may_see_them(populated: Callable[..., Result],
                                                                    home: Path) -> None:
    base = f"segport --home {home}"
    assert complete(f"{base} --as ada connections show ") == ["mem", "shared-mem"]
    assert complete(f"{base} --as carl connections test ") == ["shared-mem"]  # never the admins-only one
    assert complete(f"{base} connections show ", env={"SEGPORT_USER": "carl"}) == ["shared-mem"]
    assert complete(f"{base} --as ada exports run ") == ["e1"]
    assert complete(f"{base} --as ada segments remove news") == ["Newsletter"]
    assert sorted(complete(f"{base} --as ada exports add x --segment ")) == ["Newsletter", "fr"]
    assert complete(f"{base} --as ada exports add x --connection s") == ["shared-mem"]
    assert complete(f"{base} --as ada users remove c") == ["carl"]
    assert complete(f"{base} --as ada runs list --export ") == ["e1"]
    assert complete(f"{base} plugins show ") == ["memory"]
    assert complete(f"{base} --as nobody connections show ") == []  # an unknown user: nothing
    assert complete(f"segport --home {home / 'missing'} --as ada exports show ") == []  # no workspace: nothing


def test_completion_scripts_for_each_shell() -> None:
    for shell in ("bash", "zsh", "fish"):
        script = ok(CliRunner().invoke(cli, ["completion", shell])).stdout
        assert f"_SEGPORT_COMPLETE={shell}_source" in script or f"{shell}_complete" in script, script
    assert "exports" in complete("segport exp", shell="zsh")
    bad = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert bad.exit_code == ExitStatus.USAGE


@pytest.mark.sqlite_only("the installed command's completion entry point")
def test_completion_through_the_installed_command() -> None:
    done = subprocess.run([sys.executable, "-m", "segport"], capture_output=True, text=True, timeout=120, check=False,
                          env={"_SEGPORT_COMPLETE": "bash_complete", "COMP_WORDS": "segport run",
                               "COMP_CWORD": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "plain,runs" in done.stdout.splitlines(), done
    source = subprocess.run([sys.executable, "-m", "segport"], capture_output=True, text=True, timeout=120,
                            check=False, env={"_SEGPORT_COMPLETE": "bash_source", "PATH": "/usr/bin:/bin"})
    assert "complete -o nosort -F _segport_completion segport" in source.stdout, source
