"""Secrets sweep: recognisable credentials go through every CLI command, with ``--debug``, against the
Mailchimp and Campaign Monitor sandboxes, and appear nowhere: not on stdout or stderr, not in logs,
exceptions, run records, reject files or the audit log, not in any file of the workspace (encrypted
at rest), neither as text nor in their Basic-auth base64 form.

Every command of the click group must be exercised here: a new command fails the sweep until it is.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Iterator

import pytest
import requests
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet

from segport import (
    AlreadyExists,
    AuthError,
    ConfigError,
    ExitStatus,
    Registry,
    RunError,
    SegportError,
    Workspace,
    WorkspaceError,
)
from segport.cli import cli
from segport.plugins import make_manager
from segport.registry import set_default_registry
from segport.testing import dump_database
from segport.testing.operator import command_of, command_paths
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox

CANARY = secrets.token_hex(6)
MC_KEY = f"ca11ab1e{CANARY}{secrets.token_hex(6)}-us1"  # <32 hex>-<dc>, as Mailchimp requires
MC_WRONG_KEY = f"0ddba11{CANARY}{secrets.token_hex(6)}0-us1"  # well formed, refused by the sandbox
CM_KEY = f"SEGPORT-CANARY-{CANARY}-cm"
CLIENT_SECRET = f"SEGPORT-CANARY-{CANARY}-client-secret"
PASSWORD = f"SEGPORT-CANARY-{CANARY}-password"


# Commands that never see a workspace's credentials, with why.
NOT_SWEPT = {
    "plugins check": "runs pytest on the conformance kit with the doubles' own generated keys; the kit checks "
    "its logs, output and errors for those keys itself (tests/core/test_plugins_check.py runs the command)",
    "worker": "serves queued runs until stopped; tests/core/test_workers.py checks the workers' logs for the "
    "connections' keys",
    "serve": "serves until stopped; tests/web sweeps its pages, API answers and log for the connections' secrets",
    "completion": "prints a fixed shell script and, completing, names only (tests/core/test_scripting.py)",
}


def forms(secret: str) -> set[str]:
    """The secret, its distinctive middle, and every base64 alignment of it (any Basic header holding it)."""
    raw = secret.encode()
    found = {secret, CANARY}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        found.add(encoded[4:-4])  # the part that depends on the secret alone
    return found


class Leaks:
    """Collects every text an operator or a log could see, and checks it for every secret."""

    def __init__(self) -> None:
        self.secrets: set[str] = {MC_KEY, MC_WRONG_KEY, CM_KEY, CLIENT_SECRET, PASSWORD}
        self.texts: list[tuple[str, str]] = []
        self.shown_once: dict[str, str] = {}  # API and invite tokens: the one stdout that prints each

    def printed_once(self, secret: str) -> None:
        """``secret`` was just printed by the latest command, and must appear nowhere else (nor in any file)."""
        where, text = self.texts[-3]
        assert where.startswith("stdout of ") and secret in text
        self.shown_once[secret] = where

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def check(self) -> None:
        needles = {form for secret in self.secrets for form in forms(secret)}
        for where, text in self.texts:
            for needle in needles:
                assert needle not in text, f"a secret ({needle[:12]}...) leaked in {where}"

    def check_files(self, root: Path, skip: set[str]) -> int:
        needles = {form.encode() for secret in self.secrets for form in forms(secret)}
        needles |= {secret[-32:].encode() for secret in self.shown_once}
        checked = 0
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name not in skip:
                data = path.read_bytes()
                checked += 1
                for needle in needles:
                    assert needle not in data, f"a secret leaked in the file {path.relative_to(root)}"
        return checked


def exit_statuses(kind: type[BaseException]) -> set[int]:
    """The exit statuses of ``kind`` and of its subclasses (an error of any of them may be the one raised)."""
    found = {int(getattr(kind, "exit_status", 1))}
    for sub in kind.__subclasses__():
        found |= exit_statuses(sub)
    return found - {0, 1}


def exception_text(result: Result) -> str:
    """Everything an exception could show: the printed traceback and each chained message."""
    if result.exc_info is None or isinstance(result.exception, SystemExit):
        return ""
    parts = ["".join(traceback.format_exception(*result.exc_info))]
    seen: set[int] = set()
    exc: BaseException | None = result.exception
    stack = [exc]
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        parts += [str(exc), repr(exc.args), str(getattr(exc, "internal_message", "") or "")]
        stack += [exc.__cause__, exc.__context__]
    return "\n".join(parts)


@pytest.fixture
def sandboxes() -> Iterator[tuple[MailchimpSandbox, CampaignMonitorSandbox]]:
    """Both sandboxes, accepting the canary keys; both plugins as the CLI's registry."""
    set_default_registry(Registry.from_plugins([MailchimpDestination, CampaignMonitorDestination]))
    try:
        with MailchimpSandbox(seed=11, api_key=MC_KEY) as mc, CampaignMonitorSandbox(seed=12, api_key=CM_KEY) as cm:
            yield mc, cm
    finally:
        set_default_registry(None)


def browser(url: str) -> None:
    """Follow an authorize URL as a browser would: the sandbox approves and redirects to the loopback."""
    threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()


@pytest.mark.e2e
def test_no_secret_leaks_from_any_command(
    sandboxes: tuple[MailchimpSandbox, CampaignMonitorSandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mc, cm = sandboxes
    home = tmp_path / "ws"
    for name in ("SEGPORT_HOME", "SEGPORT_USER", "SEGPORT_SECRET_KEY", "SEGPORT_LOAD_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("segport.workspace.make_manager", lambda: make_manager(autoload=False))
    monkeypatch.setattr("webbrowser.open", browser)
    caplog.set_level(logging.DEBUG)
    leaks = Leaks()
    ran: set[str] = set()

    def run(*args: str, user: str | None = "ada", fails: type[BaseException] | None = None,
            input: str | None = None) -> Result:
        full = ("--home", str(home), "--debug", *(("--as", user) if user else ()), *args)
        result = CliRunner().invoke(cli, list(full), input=input, catch_exceptions=True)
        ran.add(command_of(cli, args))
        where = " ".join(args)[:80]
        leaks.add(f"stdout of {where}", result.stdout)
        leaks.add(f"stderr of {where}", result.stderr)
        leaks.add(f"exception of {where}", exception_text(result))
        if fails is None:
            assert result.exit_code == 0, (args, result.output, exception_text(result))
        else:  # --debug prints the traceback, then the error line, and keeps the documented exit status
            assert result.exit_code in exit_statuses(fails), (args, result.exit_code, result.output)
            assert "Traceback (most recent call last)" in result.stderr, (args, result.output)
        return result

    def collect_tokens() -> None:
        """Every stored secret value (tokens included) joins the ones that must never show."""
        with Workspace.open(home, user="ada") as ws:
            for connection in ws.store.list_connections():
                token = ws.store.connection_secrets(connection.id)
                if token:
                    leaks.secrets |= {str(v) for v in ws.vault.decrypt(token).values() if len(str(v)) >= 12}

    profiles = tmp_path / "profiles.csv"
    rows = ["id,email,first_name,last_name,tier"]
    rows += [f"p{i:03d},person{i}@shop.segport-test.net,First{i},Last{i},{'gold' if i % 3 == 0 else 'basic'}"
             for i in range(30)]
    rows += ["bad1,not-an-email,Bad,One,gold", "bad2,,Bad,Two,gold"]  # rejects, with a reject file
    profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
    keys = tmp_path / "news.txt"
    keys.write_text("".join(f"p{i:03d}\n" for i in range(0, 30, 2)), encoding="utf-8")
    mc_config = json.dumps({"api_key": MC_KEY, "api_base_url": mc.api_base_url})
    cm_config = json.dumps({"api_key": CM_KEY, "api_base_url": cm.api_base_url})
    audience = mc.demo_export_options()["audience_id"]

    # -- a workspace, its people and its data --------------------------------------------------------
    run("init", "--admin", "ada", user=None)
    run("users", "add", "carl", "--role", "contributor")
    run("users", "add", "temp", "--role", "viewer", "--json")
    run("users", "list", "--json")
    run("users", "passwd", "carl", "--password-stdin", input=PASSWORD + "\n")
    run("users", "passwd", "temp", "--password-stdin", "--json", input=PASSWORD)
    run("users", "passwd", "carl", "--password-stdin", input="carl", fails=ConfigError)
    run("users", "passwd", "ada", "--password-stdin", input=PASSWORD, user="carl", fails=SegportError)
    leaks.printed_once(run("users", "invite", "temp").stdout.strip().rsplit("/", 1)[1])
    leaks.printed_once(json.loads(run("users", "invite", "carl", "--json").stdout)["url"].rsplit("/", 1)[1])
    leaks.printed_once(run("tokens", "create", "--name", "ci", user="carl").stdout.strip())
    leaks.printed_once(json.loads(run("tokens", "create", "--name", "ci", "--json").stdout)["token"])
    leaks.printed_once(run("tokens", "create", "--name", "spare", "--expires", "90d").stdout.strip())
    run("tokens", "create", "--name", "ci", fails=AlreadyExists)
    run("tokens", "list", user="carl")
    run("tokens", "list", "--all", "--json")
    run("tokens", "revoke", "spare", "--yes")
    run("tokens", "revoke", "ci", "--user", "carl", "--yes", "--json")
    run("plugins", "list")
    run("plugins", "show", "mailchimp", "--json")
    run("plugins", "show", "campaignmonitor")
    run("connections", "notice")
    run("profiles", "load", str(profiles))
    run("profiles", "show", "p001", "--json")
    run("profiles", "list", "--limit", "5")
    run("profiles", "count", "--where", "tier = 'gold'", "--json")
    run("profiles", "remove", "no-such-key", "--yes", "--json")
    run("segments", "define", "VIP", "--where", "tier = 'gold'")
    run("segments", "define", "Spare", "--where", "tier = 'none'")
    run("segments", "load", "News", str(keys))
    run("segments", "list", "--json")

    # -- connections: with API keys, then OAuth2 ---------------------------------------------------
    run("connections", "add", "mc", "--type", "mailchimp", "--config", mc_config, "--agree-privacy",
        "--share", "contributors")
    run("connections", "add", "cm", "--type", "campaignmonitor", "--config", "-", "--agree-privacy", "--json",
        input=cm_config)
    for fmt in ((), ("--json",)):
        run("connections", "add", "mc", "--type", "mailchimp", "--config", mc_config, "--agree-privacy", *fmt,
            fails=AlreadyExists)  # name taken
        run("connections", "add", "x", "--type", "mailchimp", "--config", mc_config, *fmt,
            fails=ConfigError)  # no consent
        run("connections", "add", "x", "--type", "mailchimp", "--agree-privacy", *fmt, "--config",
            json.dumps({"api_key": MC_KEY + "!", "api_base_url": mc.api_base_url}), fails=ConfigError)  # pattern
        run("connections", "add", "x", "--type", "mailchimp", "--agree-privacy", *fmt, "--config",
            json.dumps({"api_key": MC_KEY, "zz": MC_KEY, "timeout_s": MC_KEY}), fails=ConfigError)  # misplaced
        run("connections", "add", "x", "--type", "mailchimp", "--agree-privacy", *fmt, "--config",
            json.dumps({"api_key": MC_KEY, MC_KEY: 1}), fails=ConfigError)  # as a property name
        run("connections", "add", "x", "--type", "campaignmonitor", "--agree-privacy", *fmt, "--config",
            json.dumps({"auth_method": "oauth2", "client_secret": CM_KEY}), fails=ConfigError)  # no client_id
        run("connections", "add", "x", "--type", "mailchimp", "--agree-privacy", *fmt, "--config",
            json.dumps({"api_key": MC_WRONG_KEY, "api_base_url": mc.api_base_url}), fails=AuthError)
        run("connections", "add", "x", "--type", "campaignmonitor", "--agree-privacy", *fmt, "--config",
            json.dumps({"api_key": CM_KEY + "-wrong", "api_base_url": cm.api_base_url}), fails=AuthError)
        run("connections", "add", "x", "--type", "nosuch", "--agree-privacy", *fmt, "--config", mc_config,
            fails=SegportError)
    run("connections", "add", "mco", "--type", "mailchimp", "--agree-privacy", "--config", json.dumps(
        {"auth_method": "oauth2", "client_id": "app-1", "client_secret": CLIENT_SECRET, "oauth_base_url": mc.base_url}))
    run("connections", "add", "cmo", "--type", "campaignmonitor", "--agree-privacy", "--config", json.dumps(
        {"auth_method": "oauth2", "client_id": "app-7", "client_secret": CLIENT_SECRET, "oauth_base_url": cm.base_url,
         "api_base_url": cm.api_base_url}))
    run("connections", "test", "mco", fails=AuthError)  # no token yet
    run("connections", "auth", "mco", "--timeout", "20")
    run("connections", "auth", "cmo", "--timeout", "20")
    run("connections", "auth", "mc", fails=ConfigError)  # an API-key connection
    collect_tokens()
    cm.expire_tokens()  # the next call refreshes the token (code 121) and stores the new pair
    for name in ("mc", "cm", "mco", "cmo"):
        for fmt in ((), ("--json",)):
            run("connections", "show", name, *fmt)
            run("connections", "test", name, *fmt)
            run("connections", "audiences", name, *fmt)
    run("connections", "list", "--json")
    run("connections", "list")
    run("connections", "set-cap", "mc", "100000")
    collect_tokens()  # the OAuth tokens the sandboxes issued, and the refreshed pair

    # -- exports and runs ------------------------------------------------------------------------
    run("exports", "add", "news-mc", "--connection", "mc", "--segment", "VIP", "--segment", "News", "--email",
        "email", "--map", "FNAME=first_name", "--option", f"audience_id={audience}", "--schedule", "0 3 * * *")
    run("exports", "add", "news-cm", "--connection", "cm", "--segment", "VIP", "--email", "email",
        "--map", "Name=first_name+last_name", "--option", f"list_id={cm.list_id}", "--json")
    run("exports", "add", "news-cmo", "--connection", "cmo", "--segment", "News", "--email", "email",
        "--option", f"list_id={cm.list_id}")
    run("exports", "add", "news-mco", "--connection", "mco", "--segment", "News", "--email", "email",
        "--option", f"audience_id={audience}")
    run("exports", "add", "bad", "--connection", "mc", "--segment", "VIP", "--email", "email",
        "--option", f"audience_id={audience}", "--option", "zz=1", fails=ConfigError)
    run("exports", "edit", "news-mc", "--option", "tag_prefix=seg-", "--json")
    run("exports", "list", "--json")
    run("exports", "show", "news-mc")
    run("exports", "disable", "news-cmo")
    run("exports", "enable", "news-cmo")
    first = json.loads(run("exports", "run", "news-mc", "--json").stdout)
    assert first["status"] == "succeeded" and first["counts"]["rejected"] == 2 and first["reject_file"]
    run("exports", "run", "news-cm")
    run("exports", "run", "news-mco", "--json")
    run("exports", "run", "news-cmo", "--full")
    run("exports", "run", "news-mc", "--dry-run", "--json")
    run("exports", "verify", "news-mc", "--json")
    run("exports", "verify", "news-cm")
    run("exports", "run", "news-mc", "--repair", "--json")
    run("runs", "list", "--json")
    run("runs", "show", str(first["id"]), "--json")
    run("runs", "show", str(first["id"]))
    run("runs", "rejects", str(first["id"]))
    run("runs", "rejects", str(first["id"]), "--json", "--limit", "1")
    run("runs", "retention", "90d", "--json")
    run("runs", "retention")
    run("runs", "prune", "--older-than", "90d", "--dry-run", "--json")
    run("runs", "prune", "--older-than", "90d", "--yes")
    run("schedule", "set", "0 4 * * *")
    run("schedule", "show", "--json")
    run("schedule", "show")
    run("rotate-key", "--yes", "--json")  # every credential re-encrypted: the runs below decrypt them anew
    run("refresh", "--json")
    # a contributor on the shared Mailchimp connection sees neither its secrets nor its config
    contributor = [run("exports", "add", "carls", "--connection", "mc", "--segment", "VIP", "--email", "email",
                       "--option", f"audience_id={audience}", "--json", user="carl")]
    contributor.append(run("exports", "run", "carls", "--json", user="carl"))
    for args in (("connections", "list", "--json"), ("exports", "show", "carls"), ("runs", "list", "--json"),
                 ("connections", "audiences", "mc", "--json"), ("connections", "audiences", "mc")):
        contributor.append(run(*args, user="carl"))
    run("connections", "show", "mc", user="carl", fails=SegportError)
    for result in contributor:
        assert mc.base_url.removeprefix("http://") not in result.output

    # -- edits: a rotated key (from stdin), a refused one, sharing, a role, a removed mapping -----
    for fmt in ((), ("--json",)):
        run("connections", "edit", "mc", "--config", "-", *fmt, input=json.dumps({"api_key": mc.rotate_key()}))
        run("connections", "edit", "mc", "--config", "-", *fmt, input=json.dumps({"api_key": MC_WRONG_KEY}),
            fails=AuthError)
    run("connections", "edit", "cm", "--share", "contributors", "--json")
    run("users", "role", "temp", "contributor", "--json")
    run("exports", "edit", "news-mc", "--unmap", "FNAME")
    run("exports", "run", "news-mc", "--json")
    collect_tokens()  # the rotated key

    # -- failures: revoked credentials, unknown names --------------------------------------------
    mc.revoke_key()
    cm.revoke_key()
    for fmt in ((), ("--json",)):
        run("connections", "test", "mc", *fmt, fails=AuthError)
        run("connections", "test", "cmo", *fmt, fails=AuthError)
        run("connections", "audiences", "mc", *fmt, fails=AuthError)
        run("connections", "audiences", "cm", *fmt, fails=AuthError)
        run("exports", "run", "news-mc", *fmt, fails=AuthError)
        run("exports", "run", "news-cm", *fmt, fails=AuthError)
    run("refresh", "--json", fails=RunError)
    failed = json.loads(run("runs", "list", "--json").stdout)[0]
    assert failed["status"] == "failed"
    run("runs", "show", str(failed["id"]), "--json")
    run("exports", "run", "nope", fails=SegportError)
    run("audit", "list", "--json")
    run("audit", "list")
    for user in ("ada", "carl"):  # the pages of every list (the console's, the API's) as an admin and a contributor
        with Workspace.open(home, user=user) as ws:
            pages = [ws.exports_page(), ws.runs_page(), ws.connections_page(), ws.segments_page(), ws.users_page()]
            shown = json.dumps([page.to_dict() for page in pages + ([ws.audit_page()] if user == "ada" else [])])
        leaks.add(f"list pages as {user}", shown)
        assert user == "ada" or mc.base_url.removeprefix("http://") not in shown

    # -- removals --------------------------------------------------------------------------------
    run("exports", "remove", "news-cmo", "--yes")
    run("connections", "remove", "cmo", "--yes")
    run("segments", "remove", "Spare", "--yes")
    run("users", "remove", "temp", "--yes")

    # -- the commands that open no workspace, and the long-running ones, as a real process ---------
    run("demo", "mailchimp", "--profiles", "100", "--dir", str(tmp_path / "demo"), user=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPORT_")}
    env.update(SEGPORT_HOME=str(home), SEGPORT_USER="ada")
    for args in (("sandbox", "mailchimp", "--seed", "1"), ("scheduler", "--tick", "0.05")):
        process = subprocess.Popen([sys.executable, "-m", "segport", "--debug", *args], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line, process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        ran.add(args[0])
        leaks.add(f"stdout of {args[0]}", first_line + out)
        leaks.add(f"stderr of {args[0]}", err)
    for args in (("connections", "test", "mc"), ("exports", "run", "news-mc", "--json"),
                 ("connections", "show", "mc", "--json"), ("audit", "list", "--json"),
                 ("runs", "show", str(first["id"]), "--json"),
                 ("connections", "add", "y", "--type", "mailchimp", "--agree-privacy", "--config",
                  json.dumps({"api_key": MC_KEY[:-1], "api_base_url": mc.api_base_url}))):
        proc = subprocess.run([sys.executable, "-m", "segport", "--debug", *args], env=env, text=True,
                              capture_output=True, timeout=120, check=False)
        leaks.add(f"process stdout of {args[:2]}", proc.stdout)
        leaks.add(f"process stderr of {args[:2]}", proc.stderr)

    # -- every command ran; nothing leaked anywhere ------------------------------------------------
    assert command_paths(cli) - ran - set(NOT_SWEPT) == set(), "commands the secrets sweep does not run"
    collect_tokens()
    assert len(leaks.secrets) >= 7  # the keys, the client secret and the OAuth tokens
    leaks.add("log records", caplog.text)
    leaks.add("log record arguments", "\n".join(repr(r.args) for r in caplog.records))
    leaks.check()
    reject_files = list((home / "rejects").glob("*.jsonl"))
    assert reject_files
    assert leaks.check_files(home, skip={"secret.key"}) >= 1 + len(reject_files)  # the database (and any WAL)
    assert dump_database(home)  # still a readable database


# -- the key file and a wrong key -----------------------------------------------------------------
def _cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "--as", "ada", *args], catch_exceptions=True)


@pytest.fixture
def mc_sandbox() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox(seed=13, api_key=MC_KEY) as server:
        yield server


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mc_sandbox: MailchimpSandbox) -> Iterator[Path]:
    """A workspace with one Mailchimp connection (real sandbox) and one export."""
    for name in ("SEGPORT_HOME", "SEGPORT_USER", "SEGPORT_SECRET_KEY", "SEGPORT_LOAD_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    set_default_registry(Registry.from_plugins([MailchimpDestination]))
    home = tmp_path / "ws"
    assert _cli(home, "init", "--admin", "ada").exit_code == 0
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email\n1,a@shop.segport-test.net\n", encoding="utf-8")
    audience = mc_sandbox.demo_export_options()["audience_id"]
    for args in (("profiles", "load", str(profiles)), ("segments", "define", "all", "--where", "email is not empty"),
                 ("connections", "add", "mc", "--type", "mailchimp", "--agree-privacy", "--config",
                  json.dumps({"api_key": MC_KEY, "api_base_url": mc_sandbox.api_base_url})),
                 ("exports", "add", "e", "--connection", "mc", "--segment", "all", "--email", "email",
                  "--option", f"audience_id={audience}")):
        result = _cli(home, *args)
        assert result.exit_code == 0, result.output
    yield home
    set_default_registry(None)


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077])
def test_key_file_is_created_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with Workspace.create(tmp_path / "ws", "ada"):
            pass
    finally:
        os.umask(old)
    key = tmp_path / "ws" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    Fernet(key.read_bytes().strip())


def test_no_key_file_when_the_key_comes_from_the_environment(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_SECRET_KEY", Fernet.generate_key().decode())
    with Workspace.create(tmp_path / "ws", "ada"):
        pass
    assert not (tmp_path / "ws" / "secret.key").exists()


# Every command that opens the workspace, with a wrong key: one clear line, nothing changed.
WRONG_KEY_COMMANDS = [
    ("users", "list"), ("connections", "list"), ("connections", "show", "mc"), ("connections", "test", "mc"),
    ("connections", "add", "mc2", "--type", "mailchimp", "--agree-privacy", "--no-check", "--config",
     json.dumps({"api_key": MC_KEY, "api_base_url": "http://127.0.0.1:9/3.0"})),
    ("exports", "run", "e", "--json"), ("exports", "list"), ("runs", "list"), ("audit", "list"), ("refresh",),
    ("profiles", "load", "nothing.csv"), ("schedule", "set", "0 3 * * *"),
]


@pytest.mark.parametrize("args", WRONG_KEY_COMMANDS, ids=[" ".join(a[:2]) for a in WRONG_KEY_COMMANDS])
def test_a_wrong_key_is_one_clear_error_and_changes_nothing(
    keyed: Path, monkeypatch: pytest.MonkeyPatch, mc_sandbox: MailchimpSandbox, args: tuple[str, ...]
) -> None:
    before = dump_database(keyed)
    calls = len(mc_sandbox.requests_log)
    monkeypatch.setenv("SEGPORT_SECRET_KEY", Fernet.generate_key().decode())
    result = _cli(keyed, *args)
    assert result.exit_code == ExitStatus.WORKSPACE_ERROR, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "the secret key is not this workspace's" in lines[0]
    assert "use the key the workspace was created with" in lines[0]
    assert MC_KEY not in result.output
    if "--json" in args:  # the same line as one JSON error object
        assert json.loads(result.stdout)["error"] == {"code": 12, "status": "WORKSPACE_ERROR", "message": lines[0][7:]}
    else:
        assert result.stdout == ""
    assert dump_database(keyed) == before
    assert len(mc_sandbox.requests_log) == calls  # nothing was sent with garbage credentials
    with pytest.raises(WorkspaceError, match="not this workspace's"):
        Workspace.open(keyed, user="ada")


def test_the_right_key_from_the_environment_still_works(keyed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_SECRET_KEY", (keyed / "secret.key").read_text().strip())
    result = _cli(keyed, "connections", "test", "mc", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "ok"
