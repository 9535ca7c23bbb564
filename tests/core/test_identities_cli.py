"""``segport users passwd``, ``users invite`` and ``tokens`` end to end (issue 17), on both stores."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from segport import ExitStatus, Workspace
from segport.errors import Unauthenticated
from segport.testing import dump_database

PASSWORD = "correct horse battery"
TOKEN = re.compile(r"segport_[A-Za-z0-9_-]{43}")


def one_error(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_passwd_reads_stdin_and_the_user_signs_in(ws: Workspace, run_cli: Any, act_as: Any, home: Path) -> None:
    result = run_cli("--as", "carl", "users", "passwd", "carl", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "password of 'carl' set\n"
    assert act_as(None).identities.login("carl", PASSWORD, client=None).name == "carl"  # the line break is not in it
    assert PASSWORD not in dump_database(home)
    result = run_cli("--as", "ada", "users", "passwd", "carl", "--password-stdin", "--json", input="another password")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"user": "carl", "password": "set"}


def test_passwd_without_a_terminal_or_stdin_flag_is_a_usage_error(ws: Workspace, run_cli: Any) -> None:
    result = run_cli("--as", "ada", "users", "passwd", "ada", input=PASSWORD + "\n")
    assert result.exit_code == ExitStatus.USAGE
    assert "pass it on stdin with --password-stdin" in one_error(result.stderr)
    assert ws.store.password_hash("ada") is None


def test_passwd_asks_twice_on_a_terminal(ws: Workspace, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("segport.cli._passwords._terminal", lambda: True)
    typed = f"{PASSWORD}\n{PASSWORD}x\n{PASSWORD}\n{PASSWORD}\n"  # a mismatch: asked again
    result = run_cli("--as", "ada", "users", "passwd", "ada", input=typed)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden
    assert ws.identities.login("ada", PASSWORD, client=None).name == "ada"


def test_passwd_refuses_weak_passwords_and_others_passwords(ws: Workspace, run_cli: Any) -> None:
    result = run_cli("--as", "carl", "users", "passwd", "carl", "--password-stdin", input="short")
    assert result.exit_code == ExitStatus.CONFIG_ERROR and "at least 10 characters" in one_error(result.stderr)
    result = run_cli("--as", "carl", "users", "passwd", "vera", "--password-stdin", input=PASSWORD)
    assert result.exit_code == ExitStatus.PERMISSION_DENIED
    assert "only admins manage other users' passwords" in one_error(result.stderr)


def test_invite_prints_a_one_time_link(ws: Workspace, run_cli: Any, act_as: Any) -> None:
    result = run_cli("--as", "ada", "users", "invite", "carl", "--base-url", "https://segport.example.com/")
    assert result.exit_code == 0, result.output
    match = re.fullmatch(r"https://segport\.example\.com/invite/([A-Za-z0-9_-]{43})\n", result.stdout)
    assert match is not None, result.stdout
    nobody = act_as(None)
    assert nobody.identities.accept_invite(match.group(1), PASSWORD).name == "carl"
    assert nobody.identities.login("carl", PASSWORD, client=None).name == "carl"
    result = run_cli("--as", "ada", "users", "invite", "vera", "--expires", "2h", "--json")
    document = json.loads(result.stdout)
    assert document["user"] == "vera" and document["expires_in_seconds"] == 7200
    assert document["url"].startswith("http://127.0.0.1:8400/invite/")
    for bad in ("0d", "soon"):
        result = run_cli("--as", "ada", "users", "invite", "vera", "--expires", bad)
        assert result.exit_code == ExitStatus.USAGE and "--expires" in one_error(result.stderr)


def test_tokens_create_list_revoke(ws: Workspace, run_cli: Any, act_as: Any, home: Path) -> None:
    created = run_cli("--as", "vera", "tokens", "create", "--name", "laptop")
    assert created.exit_code == 0, created.output
    assert TOKEN.fullmatch(created.stdout.strip())  # the token alone on stdout: TOKEN=$(segport tokens create ...)
    assert "not shown again" in created.stderr
    secret = created.stdout.strip()
    assert act_as(None).identities.authenticate_token(secret).name == "vera"
    as_json = run_cli("--as", "vera", "tokens", "create", "--name", "ci", "--expires", "90d", "--json")
    document = json.loads(as_json.stdout)
    assert set(document) == {"token", "name", "user", "created_at", "expires_at", "last_used_at"}
    assert TOKEN.fullmatch(document["token"]) and document["expires_at"] is not None
    listed = run_cli("--as", "vera", "tokens", "list", "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["ci", "laptop"]
    assert "segport_" not in listed.stdout and secret not in dump_database(home)
    table = run_cli("--as", "ada", "tokens", "list", "--all")
    assert table.exit_code == 0 and "laptop" in table.stdout and "vera" in table.stdout
    refused = run_cli("--as", "vera", "tokens", "revoke", "laptop")
    assert refused.exit_code == ExitStatus.USAGE and "--yes" in one_error(refused.stderr)
    revoked = run_cli("--as", "vera", "tokens", "revoke", "laptop", "--yes")
    assert revoked.exit_code == 0 and revoked.stdout == "revoked API token 'laptop' of user 'vera'\n"
    with pytest.raises(Unauthenticated):
        act_as(None).identities.authenticate_token(secret)
    by_admin = run_cli("--as", "ada", "tokens", "revoke", "ci", "--user", "vera", "--yes", "--json")
    assert json.loads(by_admin.stdout)["revoked"] == "token" and json.loads(by_admin.stdout)["user"] == "vera"
    missing = run_cli("--as", "vera", "tokens", "revoke", "ci", "--yes")
    assert missing.exit_code == ExitStatus.NOT_FOUND
