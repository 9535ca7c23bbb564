"""``segport rotate-key``: a new workspace secret key, every stored credential re-encrypted with it."""

from __future__ import annotations

import click

from ._common import State, emit_json, json_option, pass_state
from ._confirm import confirm, yes_option


@click.command("rotate-key")
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the new key to this new file (required when the key comes from SEGPORT_SECRET_KEY).",
)
@yes_option
@json_option
@pass_state
def rotate_key(state: State, new_key_file: str | None, yes: bool, as_json: bool) -> None:
    """Replace the secret key that encrypts the connections' credentials (admins only).

    Every stored secret is re-encrypted with a new key in one transaction; the key file (secret.key
    in the workspace folder) is then replaced. Stop the scheduler and workers first, and back up the
    new key: backups of the database made from now on need it.
    """
    ws = state.workspace()
    ws.require("key.rotate")
    confirm("Re-encrypt every stored credential with a new secret key?", yes)
    result = ws.rotate_key(new_key_file)
    if as_json:
        emit_json(result)
        return
    where = result["key_file"]
    click.echo(f"re-encrypted the secrets of {result['connections']} connections with a new key, now in {where}")
    if result["from_env"]:
        click.echo(f"put the key of {where} in SEGPORT_SECRET_KEY now: the old key no longer opens the workspace")
