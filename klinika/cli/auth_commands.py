"""``klinika user …``: accounts from the shell.

Whoever runs these commands can read the data folder, so they are trusted: no login is asked.
Each change is recorded in the audit trail with the actor ``cli`` (role ``system``).
"""

from __future__ import annotations

import click

from klinika.audit import Actor
from klinika.auth import USER_ROLES, InvalidAccount, UnknownUser, UserExists
from klinika.auth.passwords import generate_password
from klinika.cli.context import settings_from
from klinika.i18n import USER_LANGUAGES

CLI_ACTOR = Actor("cli", "system")


def _runtime(ctx: click.Context):  # type: ignore[no-untyped-def]
    from klinika.runtime import Runtime

    return Runtime(settings_from(ctx.find_root()))


def _password(given: str | None, prompt: bool) -> tuple[str, bool]:
    """The password to set and whether it was generated (then it is printed once)."""
    if given:
        return given, False
    if prompt:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True), False
    return generate_password(), True


@click.group()
def user() -> None:
    """User accounts."""


@user.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice([str(r) for r in USER_ROLES]), required=True)
@click.option("--password", help="The password (else one is generated and printed).")
@click.option("--prompt", is_flag=True, help="Type the password instead of generating one.")
@click.option("--display-name", default="", help="Name shown in the interface.")
@click.option(
    "--language",
    type=click.Choice(USER_LANGUAGES),
    default="auto",
    show_default=True,
    help="Language of the interface; auto follows the browser.",
)
@click.pass_context
def add_user(
    ctx: click.Context,
    username: str,
    role: str,
    password: str | None,
    prompt: bool,
    display_name: str,
    language: str,
) -> None:
    """Create a user; the first admin is made this way."""
    secret, generated = _password(password, prompt)
    with _runtime(ctx) as runtime:
        try:
            created = runtime.auth.create_user(
                username,
                role,
                secret,
                display_name=display_name,
                language=language,
                actor=CLI_ACTOR,
                source="cli",
                must_change_password=generated,
            )
        except (InvalidAccount, UserExists) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"created {created.role} {created.username}")
    if generated:
        click.echo(f"password: {secret}")


@user.command("list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """List users."""
    with _runtime(ctx) as runtime:
        users = runtime.auth.list_users()
    for account in users:
        state = "active" if account.active else "disabled"
        click.echo(
            f"{account.username}\t{account.role}\t{state}\t{account.language}\t"
            f"{account.display_name}"
        )


@user.command("passwd")
@click.argument("username")
@click.option("--password", help="The new password (else one is generated and printed).")
@click.option("--prompt", is_flag=True, help="Type the password instead of generating one.")
@click.pass_context
def passwd(ctx: click.Context, username: str, password: str | None, prompt: bool) -> None:
    """Set a user's password; ends their sessions and lifts their login lockouts."""
    secret, generated = _password(password, prompt)
    with _runtime(ctx) as runtime:
        try:
            runtime.auth.set_password(
                username, secret, actor=CLI_ACTOR, source="cli", must_change_password=generated
            )
        except (InvalidAccount, UnknownUser) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {username} changed")
    if generated:
        click.echo(f"password: {secret}")


@user.command("unlock")
@click.argument("username")
@click.pass_context
def unlock(ctx: click.Context, username: str) -> None:
    """Lift the login back-off of a user (every address); the password is unchanged."""
    with _runtime(ctx) as runtime:
        try:
            lifted = runtime.auth.unlock(username, actor=CLI_ACTOR, source="cli")
        except UnknownUser as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{username} unlocked ({lifted} lock{'s' if lifted != 1 else ''} lifted)")


def _set_active(ctx: click.Context, username: str, active: bool) -> None:
    with _runtime(ctx) as runtime:
        try:
            runtime.auth.update_user(username, active=active, actor=CLI_ACTOR, source="cli")
        except (InvalidAccount, UnknownUser) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{username} {'enabled' if active else 'disabled'}")


@user.command("disable")
@click.argument("username")
@click.pass_context
def disable(ctx: click.Context, username: str) -> None:
    """Disable a user and end their sessions."""
    _set_active(ctx, username, False)


@user.command("enable")
@click.argument("username")
@click.pass_context
def enable(ctx: click.Context, username: str) -> None:
    """Enable a disabled user."""
    _set_active(ctx, username, True)


def register(group: click.Group) -> None:
    """Add ``user`` to the ``klinika`` command (``audit`` is in :mod:`.audit_commands`)."""
    group.add_command(user)
