"""``klinika backup / restore / fsck``."""

from __future__ import annotations

from pathlib import Path

import click

from klinika.cli.context import settings_from


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, required=True)
@click.option("--full", is_flag=True, help="Copy every blob again, not only the missing ones.")
@click.pass_context
def backup(ctx: click.Context, args: tuple[str, ...], full: bool) -> None:
    """Back up into DEST (``klinika backup DEST``), check one (``klinika backup verify
    DEST/<backup>``), or apply the retention policy (``klinika backup prune DEST``)."""
    from klinika.audit import Actor
    from klinika.backup import create_backup, verify_backup
    from klinika.backup.snapshot import BackupError, read_manifest
    from klinika.runtime import Runtime

    if args[0] == "verify":
        if len(args) != 2:
            raise click.UsageError("klinika backup verify BACKUP")
        target = Path(args[1])
        try:
            total = len(read_manifest(target).blobs)
            with click.progressbar(length=total, label="Verifying") as bar:
                problems = verify_backup(target, progress=bar.update)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        click.echo(f"{total} blob(s) checked, {len(problems)} problem(s)")
        ctx.exit(1 if problems else 0)
    settings = settings_from(ctx)
    if args[0] == "prune":
        from klinika.backup.retention import Retention, prune

        if len(args) != 2:
            raise click.UsageError("klinika backup prune DEST")
        policy = Retention(
            settings.backup_keep_daily, settings.backup_keep_weekly, settings.backup_keep_monthly
        )
        deleted, blobs = prune(Path(args[1]), policy)
        click.echo(f"deleted {len(deleted)} backup(s) and {blobs} unreferenced blob(s)")
        return
    with Runtime(settings) as runtime:
        try:
            with click.progressbar(length=0, label="Backing up") as bar:
                folder, manifest = create_backup(
                    settings.database_url,
                    settings.blob_dir,
                    Path(args[0]),
                    full=full,
                    progress=bar.update,
                )
        except BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        runtime.audit.record(
            Actor.system(),
            "backup:create",
            "success",
            details={
                "backup": str(folder),
                "blobs": len(manifest.blobs),
                "copied": manifest.copied_blobs,
                "full": full,
            },
        )
    click.echo(
        f"backup {folder}: {manifest.counts.get('instances', 0)} instances, "
        f"{len(manifest.blobs)} blobs ({manifest.copied_blobs} copied, "
        f"{manifest.copied_bytes / 1e6:.1f} MB)"
    )


@click.command()
@click.argument("backup_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore into a non-empty data folder.")
@click.pass_context
def restore(ctx: click.Context, backup_dir: Path, force: bool) -> None:
    """Restore a backup into the (empty) data folder, then run fsck."""
    from klinika.audit import Actor
    from klinika.backup import fsck, restore_backup
    from klinika.backup.snapshot import BackupError
    from klinika.runtime import Runtime

    settings = settings_from(ctx)
    try:
        manifest = restore_backup(backup_dir, settings.data_dir, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    with Runtime(settings) as runtime:
        report = fsck(runtime.archive)
        runtime.audit.record(
            Actor.system(),
            "backup:restore",
            "success" if report.clean else "failure",
            details={"backup": str(backup_dir), "instances": manifest.counts.get("instances")},
        )
    click.echo(
        f"restored {manifest.counts.get('instances', 0)} instances from {backup_dir}; "
        f"fsck {'clean' if report.clean else 'found problems'}"
    )
    ctx.exit(0 if report.clean else 1)


@click.command()
@click.option("--repair", is_flag=True, help="Re-index orphans and recompute counts.")
@click.option("--delete-orphans", is_flag=True, help="Delete orphans that cannot be indexed.")
@click.pass_context
def fsck_command(ctx: click.Context, repair: bool, delete_orphans: bool) -> None:
    """Check that index and blobs agree (missing, corrupt, orphan blobs; stale counts)."""
    from klinika.backup import fsck
    from klinika.runtime import Runtime

    with Runtime(settings_from(ctx)) as runtime:
        report = fsck(runtime.archive, repair=repair, delete_orphans=delete_orphans)
    for name in ("missing", "corrupt", "orphans", "stale_counts", "repaired", "deleted"):
        for item in getattr(report, name):
            click.echo(f"{name}: {item}")
    click.echo("clean" if report.clean else "problems found")
    ctx.exit(0 if report.clean or (repair and not report.missing and not report.corrupt) else 1)


fsck_command.name = "fsck"


@click.command()
@click.pass_context
def compress(ctx: click.Context) -> None:
    """Compress every uncompressed blob with zstd (storage compression for an existing
    archive; set KLINIKA_COMPRESS_STORAGE=true so that new instances are compressed too)."""
    from klinika.runtime import Runtime

    with Runtime(settings_from(ctx)) as runtime:
        keys = list(runtime.blobs.blob_keys())
        saved = 0
        with click.progressbar(keys, label="Compressing") as bar:
            for key in bar:
                saved += runtime.blobs.compress_existing(key)
    click.echo(f"{len(keys)} blob(s), {saved / 1e6:.1f} MB saved")


def register(cli: click.Group) -> None:
    for command in (backup, restore, fsck_command, compress):
        cli.add_command(command)
