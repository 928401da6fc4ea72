"""``klinika storage migrate --to s3|files``: move the blobs to another backend.

Thin: open both stores from the settings, call :func:`klinika.backup.migrate.migrate_blobs`,
record the audit event, print.
"""

from __future__ import annotations

import click

from klinika.cli.context import settings_from
from klinika.errors import StorageUnavailable


@click.group()
def storage() -> None:
    """Blob storage: files in the data folder or an S3 bucket."""


@storage.command()
@click.option("--to", "kind", type=click.Choice(["s3", "files"]), required=True)
@click.pass_context
def migrate(ctx: click.Context, kind: str) -> None:
    """Copy every blob from the backend KLINIKA_STORAGE names to the other one (S3 from the
    KLINIKA_S3_* settings, files in <data>/blobs), verifying every checksum; then set
    KLINIKA_STORAGE to the new backend. Stop the server first. Safe to run again."""
    from klinika.audit import Actor, Outcome
    from klinika.backup.migrate import migrate_blobs
    from klinika.runtime import Runtime
    from klinika.storage import open_blob_store

    settings = settings_from(ctx)
    if settings.storage == kind:
        raise click.ClickException(
            f"KLINIKA_STORAGE is {kind} already; set it to the backend the blobs are in now"
        )
    with Runtime(settings) as runtime:
        target = open_blob_store(settings, kind)
        try:
            total = sum(1 for _ in runtime.blobs.blob_keys())
            with click.progressbar(length=total, label=f"Copying to {kind}") as bar:
                report = migrate_blobs(
                    runtime.archive, target, progress=lambda step, _total: bar.update(step)
                )
        except StorageUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            target.close()
        runtime.audit.record(
            Actor.system(),
            "storage:migrate",
            Outcome.FAILURE if report.problems else Outcome.SUCCESS,
            details={
                "from": settings.storage,
                "to": kind,
                "copied": report.copied,
                "present": report.present,
                "problems": report.problems[:10],
            },
        )
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    click.echo(
        f"{report.copied} blob(s) copied ({report.copied_bytes / 1e6:.1f} MB), "
        f"{report.present} already there; every checksum verified in {kind}; "
        f"{len(report.problems)} problem(s)"
    )
    if report.problems:
        ctx.exit(1)
    click.echo(f"now set KLINIKA_STORAGE={kind} and start the server")


def register(cli: click.Group) -> None:
    cli.add_command(storage)
