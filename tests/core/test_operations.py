"""The packaging recipes of docs/operations.md (Dockerfile, systemd units, cron line), the filter docs, README."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest

from segport.cli import cli
from segport.errors import ExitStatus
from segport.scheduling import validate_cron
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
UNITS = ROOT / "packaging" / "systemd"


def dockerfile_stages() -> list[dict[str, list[str]]]:
    """The Dockerfile's stages, each {INSTRUCTION: [arguments, ...]} (continuation lines joined, FROM starts one)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    stages: list[dict[str, list[str]]] = [{}]
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            if instruction.upper() == "FROM":
                stages.append({})
            stages[-1].setdefault(instruction.upper(), []).append(rest.strip())
    return stages


def dockerfile() -> dict[str, list[str]]:
    """The final stage's instructions: what the image is made of."""
    return dockerfile_stages()[-1]


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's settings: {Key: [values, ...]} (sections merged; keys are unique across them here)."""
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def environment(settings: dict[str, list[str]]) -> dict[str, str]:
    return dict(item.split("=", 1) for value in settings.get("Environment", []) for item in shlex.split(value))


def documented_home() -> str:
    """The workspace folder docs/operations.md names as SEGPORT_HOME."""
    match = re.search(r"\(`SEGPORT_HOME`, here `([^`]+)`\)", OPERATIONS)
    assert match, "docs/operations.md must name the workspace folder"
    return match.group(1)


def segport_command(args: list[str]) -> str:
    """The segport command that ``args`` (what follows the program) names, or fail."""
    group: click.Group = cli
    for word in args:
        command = group.commands.get(word)
        assert command is not None, f"'segport {' '.join(args)}': {word!r} is no segport command"
        if not isinstance(command, click.Group):
            return str(command.name)
        group = command
    raise AssertionError(f"'segport {' '.join(args)}' names a group, not a command")


def test_the_dockerfile_runs_the_scheduler_as_a_user_on_the_documented_volume() -> None:
    instructions = dockerfile()
    entrypoint = json.loads(instructions["ENTRYPOINT"][-1])
    command = json.loads(instructions["CMD"][-1])
    assert entrypoint == ["segport"]
    assert segport_command(command) == "scheduler"
    [volume] = json.loads(instructions["VOLUME"][-1])
    home = dict(re.findall(r"(\w+)=(\S+)", " ".join(instructions["ENV"])))["SEGPORT_HOME"]
    assert volume == home == documented_home() == instructions["WORKDIR"][-1]
    user = instructions["USER"][-1]
    assert user not in ("root", "0") and "useradd --system --uid 10001 --user-group" in instructions["RUN"][0]
    assert f"chown {user}:{user} {home}" in instructions["RUN"][0]
    wheel_install = r'set -- /tmp/wheels/segport-\*\.whl .*pip install [^"]*"\$1\[([\w,]+)\]"'
    installed = re.search(wheel_install, instructions["RUN"][0])
    assert installed, "the image installs segport from the wheel the builder stage made"
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    for extra in installed.group(1).split(","):
        assert re.search(rf"^{extra} =$", setup, re.MULTILINE), f"no extra {extra!r} in setup.cfg"
    assert instructions["STOPSIGNAL"] == ["SIGTERM"]


def test_the_image_holds_no_layer_with_the_build_context() -> None:
    *builders, final = dockerfile_stages()
    builder = next(stage for stage in builders if stage.get("FROM", [""])[0].endswith(" AS builder"))
    assert "wheel" in builder["RUN"][0] and "/wheels" in builder["RUN"][0]
    # the final stage copies only the builder's wheels, never the context (its layer would keep it)
    assert final["COPY"] == ["--from=builder /wheels/ /tmp/wheels/"]
    assert "rm -rf /tmp/wheels" in final["RUN"][0]
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored[0] == "*", ".dockerignore is an allow-list: a credential file in the checkout stays out"
    allowed = {line[1:] for line in ignored if line.startswith("!")}
    assert allowed == {"pyproject.toml", "setup.cfg", "README.md", "core", "plugins", "schemas"}
    assert {"**/segport.toml", "**/.segport", "**/*.db", "**/*.key", "**/.venv"} <= set(ignored)


@pytest.mark.parametrize("name", ["segport-scheduler.service", "segport-refresh.service"])
def test_the_systemd_units_run_segport_commands_in_the_documented_workspace(name: str) -> None:
    settings = unit(name)
    program, *args = shlex.split(settings["ExecStart"][0])
    assert program == "/opt/segport/bin/segport"
    expected = {"segport-scheduler.service": "scheduler", "segport-refresh.service": "refresh"}[name]
    assert segport_command(args) == expected
    assert environment(settings)["SEGPORT_HOME"] == documented_home()
    assert settings["StateDirectory"] == [documented_home().removeprefix("/var/lib/")]
    assert settings["User"] == ["segport"]
    assert str(int(ExitStatus.TERMINATED)) in settings["SuccessExitStatus"][0].split()
    assert settings["KillSignal"] == ["SIGTERM"]


def test_the_timer_starts_the_refresh_service() -> None:
    settings = unit("segport-refresh.timer")
    assert settings["Unit"] == ["segport-refresh.service"]
    assert (UNITS / "segport-refresh.service").is_file()
    assert unit("segport-refresh.service")["Type"] == ["oneshot"]


def test_the_cron_line_runs_segport_refresh_in_the_documented_workspace() -> None:
    lines = [
        line for line in (ROOT / "packaging" / "segport.cron").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z]+=", line)
    ]
    [line] = lines
    fields = line.split(None, 6)
    validate_cron(" ".join(fields[:5]))
    assert fields[5] == "segport"  # /etc/cron.d's user field
    words = shlex.split(fields[6])
    env = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    assert env["SEGPORT_HOME"] == documented_home()
    program = words.index("/opt/segport/bin/segport")
    assert segport_command([w for w in words[program + 1:] if not w.startswith(">")]) == "refresh"


@pytest.mark.parametrize(
    "path",
    ["Dockerfile", "packaging/systemd/segport-scheduler.service", "packaging/systemd/segport-refresh.service",
     "packaging/systemd/segport-refresh.timer", "packaging/segport.cron"],
)
def test_docs_operations_shows_each_recipe_as_it_is(path: str) -> None:
    assert (ROOT / path).read_text(encoding="utf-8") in OPERATIONS


def test_docs_filters_repeats_the_parser_rules() -> None:
    import segport.filters

    text = " ".join((ROOT / "docs" / "filters.md").read_text(encoding="utf-8").split())
    rules = segport.filters.__doc__.split("\n", 1)[1]
    for paragraph in re.split(r"\n\s*\n|\n- ", rules):
        words = " ".join(re.sub(r"``(.+?)``", r"`\1`", paragraph).replace("\\\\", "\\").split())
        if "first name" not in words:
            assert words in text, words


def test_readme_points_to_files_that_exist_and_puts_no_key_on_a_command_line() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "segport/filters.py" not in readme
    for link in re.findall(r"\]\(((?:docs|schemas)/[^)#]+)", readme):
        assert (ROOT / link).exists(), link
    assert not re.search(r"--config '\{[^']*(api_key|client_secret|password)", readme)


def test_rotate_key_re_encrypts_the_credentials(tmp_path: Path, database_url: str | None) -> None:
    sandbox = MailchimpSandbox(seed=2)
    sandbox.start()
    try:
        op = Operator.init(tmp_path / "ws", database_url=database_url)
        op("connections", "add", "mc", "--type", "mailchimp", "--agree-privacy", "--config",
           json.dumps(sandbox.demo_connection()))
        old = (op.home / "secret.key").read_bytes()
        assert op("rotate-key", check=False).returncode == 2  # no terminal to confirm on: --yes
        rotated = json.loads(op("rotate-key", "--yes", "--json").stdout)
        assert rotated == {"connections": 1, "key_file": str(op.home / "secret.key"), "from_env": False}
        new = (op.home / "secret.key").read_bytes()
        assert new != old and (op.home / "secret.key").stat().st_mode & 0o777 == 0o600
        assert not (op.home / "secret.key.new").exists()
        assert op("connections", "test", "mc").returncode == 0  # the credentials decrypt with the new key
        audit = json.loads(op("audit", "list", "--json").stdout)
        assert any(entry["action"] == "key.rotate" for entry in audit)
        # a key from SEGPORT_SECRET_KEY: the new one goes to a new file, which is then required
        op.env["SEGPORT_SECRET_KEY"] = new.decode().strip()
        refused = op("rotate-key", "--yes", check=False)
        assert refused.returncode == 3 and "SEGPORT_SECRET_KEY" in refused.stderr
        out = tmp_path / "new.key"
        op("rotate-key", "--yes", "--new-key-file", str(out))
        assert op("connections", "test", "mc", check=False).returncode == 12  # the old key no longer works
        op.env["SEGPORT_SECRET_KEY"] = out.read_text().strip()
        assert op("connections", "test", "mc").returncode == 0
        assert (op.home / "secret.key").read_bytes() == new  # the file was not the key in use: untouched
    finally:
        sandbox.stop()
