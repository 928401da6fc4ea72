"""``klinika audit verify / checkpoint``: the audit trail from the shell.

Whoever runs these commands can read the data folder (and the audit key), so they are
trusted: no login is asked.
"""

from __future__ import annotations

from pathlib import Path

import click

from klinika.cli.context import settings_from


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option(
    "--backups",
    "destinations",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A backup destination whose manifests' audit heads are compared "
    "(default: backup_dir; repeatable).",
)
@click.pass_context
def verify(ctx: click.Context, destinations: tuple[Path, ...]) -> None:
    """Check the chain, its checkpoints and the backups' audit heads; exits 1 if an event
    was edited, deleted or cut from the end, or the chain was re-chained without the key."""
    from klinika.backup import audit_anchors
    from klinika.runtime import Runtime

    settings = settings_from(ctx)
    folders = list(destinations) or ([settings.backup_dir] if settings.backup_dir else [])
    anchors, problems = [], []
    for folder in folders:  # read before the head: see AuditTrail.verify
        found, unreadable = audit_anchors(folder)
        anchors.extend(found)
        problems.extend(unreadable)
    with Runtime(settings) as runtime:
        result = runtime.audit.verify(anchors)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    if not result.ok:
        click.echo(f"audit trail BROKEN after {result.checked} good events: {result.problem}")
        ctx.exit(1)
    keyed = f", keyed from event {result.keyed_from}" if result.keyed_from else ""
    click.echo(
        f"audit trail intact: {result.checked} events, {result.anchors} checkpoint(s) and "
        f"backup head(s) match{keyed}"
    )


@audit.command("checkpoint")
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Write a signed checkpoint of the chain's head now (cron may call this)."""
    from klinika.runtime import Runtime

    with Runtime(settings_from(ctx)) as runtime:
        anchor = runtime.audit.checkpoint()
    click.echo(f"checkpoint at event {anchor.seq}" if anchor else "the head is checkpointed")


def register(group: click.Group) -> None:
    """Add ``audit`` to the ``klinika`` command."""
    group.add_command(audit)
