"""`jobruns auth describe`: which workspace and sign-in method a command would use, and why.

It prints where each setting came from (flag, environment variable, profile, host metadata);
it never prints a token, a client secret or any other sensitive setting: those show masked.
"""

from __future__ import annotations

import click

from extractor.cli._common import auth_type_option, cli, workspace_options
from extractor.errors import JobrunsError


@cli.group()
def auth() -> None:
    """Sign-in: which credentials jobruns uses."""


@auth.command()
@workspace_options
@auth_type_option
def describe(
    host: str | None, token: str | None, profile: str | None, auth_type: str | None
) -> None:
    """Show the host, the sign-in method chosen and where each setting came from.

    \b
    Like `databricks auth describe`; secrets are always masked. It signs in (fetching an OAuth
    token when the method needs one) to check that the credentials work, without calling an API.
    """
    from extractor.config import resolve_workspace

    config = resolve_workspace(host=host, token=token, profile=profile, auth_type=auth_type)
    failure: JobrunsError | None = None
    try:
        config.credentials.headers()
    except JobrunsError as exc:
        failure = exc
    click.echo(f"Host: {config.host}")
    click.echo(f"Authenticated with: {config.auth_type}")
    if config.profile:
        click.echo(f"Profile: {config.profile}")
    if config.workspace_id:
        click.echo(f"Workspace id: {config.workspace_id}")
    click.echo(f"Sign-in: {'ok' if failure is None else 'failed (see below)'}")
    click.echo("-----")
    click.echo("Current configuration:")
    for item in config.sources:
        click.echo(f"  ✓ {item.name}: {item.value} (from {item.source})")
    if failure is not None:
        raise failure
