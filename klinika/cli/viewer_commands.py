"""``klinika viewer install``: fetch the pinned OHIF build from npm, check it, cache it."""

from __future__ import annotations

from pathlib import Path

import click

from klinika.cli.context import settings_from


def register(cli: click.Group) -> None:
    cli.add_command(viewer)


@click.group()
def viewer() -> None:
    """The OHIF viewer."""


@viewer.command()
@click.option(
    "--tarball",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Install from this npm tarball instead of asking npm (its sha512 is still checked).",
)
@click.pass_context
def install(ctx: click.Context, tarball: Path | None) -> None:
    """Install OHIF (pinned version and sha512) into the cache folder, once."""
    from klinika.viewer.install import ViewerInstallError
    from klinika.viewer.install import install as install_viewer

    settings = settings_from(ctx)
    try:
        installed = install_viewer(settings.cache_path, tarball=tarball)
    except ViewerInstallError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"OHIF {installed.version} ({installed.integrity[:19]}…) in {installed.root}")
