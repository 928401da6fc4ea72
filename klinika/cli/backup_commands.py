"""``klinika backup [create] DEST / backup verify / backup prune / restore / fsck / compress``.

Thin: parse, call one function of :mod:`klinika.backup`, record the audit event, print.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click

from klinika.cli.context import settings_from
from klinika.errors import StorageUnavailable

BackupPath = click.Path(exists=True, file_okay=False, path_type=Path)


@contextlib.contextmanager
def _progress(label: str):  # type: ignore[no-untyped-def]
    """A click progress bar whose length is learnt from the first ``progress(step, total)``."""
    with click.progressbar(length=1, label=label, show_pos=True) as bar:

        def advance(step: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(step)

        yield advance


class _BackupGroup(click.Group):
    """``klinika backup DEST`` means ``klinika backup create DEST``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["create", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_BackupGroup)
def backup() -> None:
    """Back up into DEST (``klinika backup DEST [--full]``), check a backup (``verify``),
    or apply the retention policy (``prune``)."""


@backup.command(name="create")
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option("--full", is_flag=True, help="Copy every blob again, not only the missing ones.")
@click.pass_context
def create(ctx: click.Context, destination: Path, full: bool) -> None:
    """Back up the index and the blobs into DEST (incremental unless --full)."""
    from klinika.audit import Actor, Outcome
    from klinika.backup import BackupError, create_backup
    from klinika.backup.schedule import backup_details
    from klinika.runtime import Runtime

    settings = settings_from(ctx)
    with Runtime(settings) as runtime:
        try:
            with _progress("Backing up") as progress:
                folder, manifest = create_backup(
                    settings.database_url,
                    runtime.blobs,
                    destination,
                    full=full,
                    progress=progress,
                )
        except (BackupError, StorageUnavailable) as exc:
            runtime.audit.record(
                Actor.system(), "backup:create", Outcome.FAILURE, details={"error": str(exc)}
            )
            raise click.ClickException(str(exc)) from exc
        runtime.audit.record(
            Actor.system(),
            "backup:create",
            Outcome.FAILURE if manifest.problems else Outcome.SUCCESS,
            details=backup_details(folder, manifest),
        )
    counts = manifest.counts
    click.echo(
        f"backup {folder}: {counts.get('studies', 0)} studies, {counts.get('instances', 0)} "
        f"instances, {len(manifest.blobs)} blobs ({manifest.copied_blobs} copied, "
        f"{manifest.copied_bytes / 1e6:.1f} MB) in {manifest.seconds:.1f} s"
    )
    for problem in manifest.problems:
        click.echo(f"  {problem}", err=True)
    ctx.exit(1 if manifest.problems else 0)


@backup.command()
@click.argument("backup_dir", metavar="BACKUP", type=BackupPath)
@click.pass_context
def verify(ctx: click.Context, backup_dir: Path) -> None:
    """Re-read every checksum of BACKUP (reads only; needs no installation)."""
    from klinika.backup import BackupError, read_manifest, verify_backup

    try:
        total = len(read_manifest(backup_dir).blobs)
        with _progress("Verifying") as progress:
            problems = verify_backup(backup_dir, progress=progress)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    click.echo(f"{backup_dir}: index and {total} blob(s) checked, {len(problems)} problem(s)")
    ctx.exit(1 if problems else 0)


@backup.command(name="prune")
@click.argument("destination", type=BackupPath)
@click.option("--keep-hourly", type=int, default=0, show_default=True, help="Hours to keep.")
@click.option("--keep-daily", type=int, help="Days to keep (default: backup_keep_daily).")
@click.option("--keep-weekly", type=int, help="ISO weeks to keep (backup_keep_weekly).")
@click.option("--keep-monthly", type=int, help="Months to keep (backup_keep_monthly).")
@click.pass_context
def prune_command(
    ctx: click.Context,
    destination: Path,
    keep_hourly: int,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
) -> None:
    """Delete backups the retention policy does not keep, then unreferenced blobs."""
    from klinika.backup import BackupError, Retention, prune

    settings = settings_from(ctx)
    policy = Retention(
        settings.backup_keep_daily if keep_daily is None else keep_daily,
        settings.backup_keep_weekly if keep_weekly is None else keep_weekly,
        settings.backup_keep_monthly if keep_monthly is None else keep_monthly,
        keep_hourly,
    )
    try:
        deleted, blobs = prune(destination, policy)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if deleted and settings.data_dir.is_dir():  # on the installation's host: audit it
        from klinika.audit import Actor, Outcome
        from klinika.runtime import Runtime

        with Runtime(settings) as runtime:
            runtime.audit.record(
                Actor.system(),
                "backup:prune",
                Outcome.SUCCESS,
                details={"deleted": [b.name for b in deleted], "blobs": blobs},
            )
    click.echo(f"deleted {len(deleted)} backup(s) and {blobs} unreferenced blob(s)")


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _size(text: str) -> int:
    """``500GB``, ``1TB``, ``2.5 TB`` → bytes (decimal units, as disks are sold)."""
    number = text.strip().upper().rstrip("B") or "0"
    unit = next((u for u in ("K", "M", "G", "T") if number.endswith(u)), "")
    try:
        return int(float(number.removesuffix(unit).strip()) * _UNITS[unit + "B" if unit else ""])
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a size such as 500GB or 1TB") from exc


@backup.command(name="drill")
@click.argument("source", metavar="[BACKUP|DEST]", required=False, type=BackupPath)
@click.option(
    "--scratch",
    type=click.Path(file_okay=False, path_type=Path),
    help="Empty folder to restore into (default: a new temporary folder).",
)
@click.option("--database-url", help="Scratch database (needed for a PostgreSQL dump).")
@click.option(
    "--size", "sizes", multiple=True, help="Also estimate the RTO for this size (e.g. 1TB)."
)
@click.option("--keep", is_flag=True, help="Keep the scratch installation afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def drill(
    ctx: click.Context,
    source: Path | None,
    scratch: Path | None,
    database_url: str | None,
    sizes: tuple[str, ...],
    keep: bool,
    as_json: bool,
) -> None:
    """Restore drill: restore BACKUP (or the newest backup in DEST, default backup_dir) into
    a scratch installation, fsck it, verify its audit chain, and report the RTO measured."""
    import json
    import tempfile

    from klinika.backup import BackupError
    from klinika.backup.drill import resolve_backup, run_drill
    from klinika.backup.schedule import DRILL_ACTION

    settings = settings_from(ctx)
    source = source or settings.backup_dir
    if source is None:
        raise click.UsageError("name a backup or destination, or set backup_dir")
    wanted = [(text, _size(text)) for text in sizes]
    scratch = scratch or Path(tempfile.mkdtemp(prefix="klinika-drill-"))
    try:
        from klinika.audit import load_audit_keys

        report = run_drill(
            resolve_backup(source),
            scratch,
            database_url=database_url,
            keep=keep,
            audit_keys=load_audit_keys(settings.audit_key_path),
        )
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    estimates = {text: round(report.rto_for(size), 1) for text, size in wanted}
    details = report.as_dict() | {"rto_estimates_seconds": estimates}
    if settings.data_dir.is_dir():  # on the installation's host: the drill is on record
        from klinika.audit import Actor, Outcome
        from klinika.runtime import Runtime

        with Runtime(settings) as runtime:
            runtime.audit.record(
                Actor.system(),
                DRILL_ACTION,
                Outcome.SUCCESS if report.ok else Outcome.FAILURE,
                details=details,
            )
    if as_json:
        click.echo(json.dumps(details, indent=1))
    else:
        rate = report.bytes / report.seconds / 1e6 if report.seconds else 0.0
        click.echo(
            f"drill of {report.backup}: {report.instances} instances, {report.blobs} blobs, "
            f"{report.bytes / 1e6:.1f} MB restored in {report.restore_seconds:.1f} s, "
            f"checked in {report.check_seconds:.1f} s ({rate:.0f} MB/s)"
        )
        click.echo(
            f"fsck {'clean' if report.fsck_clean else 'found problems'}; "
            f"audit chain {'verifies' if report.audit_chain_ok else 'BROKEN'}"
        )
        click.echo(f"RTO measured: {report.seconds:.1f} s for {report.bytes / 1e9:.2f} GB")
        for text, seconds in estimates.items():
            click.echo(f"RTO estimated for {text}: {seconds / 3600:.2f} h")
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
    ctx.exit(0 if report.ok else 1)


@click.command()
@click.argument("backup_dir", metavar="BACKUP", type=BackupPath)
@click.option("--force", is_flag=True, help="Restore into an installation that holds data.")
@click.pass_context
def restore(ctx: click.Context, backup_dir: Path, force: bool) -> None:
    """Restore BACKUP into this (empty) installation, then prove it whole with fsck."""
    from klinika.audit import Actor, Outcome
    from klinika.backup import BackupError, fsck, restore_backup
    from klinika.runtime import Runtime
    from klinika.storage import open_blob_store

    settings = settings_from(ctx)
    started = time.monotonic()
    blobs = open_blob_store(settings)
    try:
        with _progress("Restoring") as progress:
            manifest = restore_backup(
                backup_dir, settings.database_url, blobs, force=force, progress=progress
            )
    except (BackupError, StorageUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        blobs.close()
    restored = time.monotonic() - started
    _set_aside_checkpoints(settings.audit_checkpoint_path)
    with Runtime(settings) as runtime:
        with _progress("Checking") as progress:
            report = fsck(runtime.archive, progress=progress)
        chain = runtime.audit.verify()
        runtime.audit.record(
            Actor.system(),
            "backup:restore",
            Outcome.SUCCESS if report.clean and chain.ok else Outcome.FAILURE,
            details={
                "backup": str(backup_dir),
                "instances": manifest.counts.get("instances", 0),
                "fsck_clean": report.clean,
                "audit_chain_ok": chain.ok,
                "forced": force,
            },
        )
    _print_report(report)
    click.echo(
        f"restored {manifest.counts.get('instances', 0)} instances from {backup_dir} in "
        f"{restored:.1f} s (+{time.monotonic() - started - restored:.1f} s fsck); "
        f"fsck {'clean' if report.clean else 'found problems'}; "
        f"audit chain {'verifies' if chain.ok else 'BROKEN'}"
    )
    ctx.exit(0 if report.clean and chain.ok else 1)


def _set_aside_checkpoints(path: Path) -> None:
    """A restore rolls the trail back to the backup's head: this installation's checkpoints
    of the later head are kept beside, not compared (``backup:restore`` is in the trail)."""
    if path.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path.rename(path.with_name(f"{path.stem}.before-restore-{stamp}{path.suffix}"))


@click.command(name="fsck")
@click.option("--repair", is_flag=True, help="Re-index orphans and recompute stale counts.")
@click.option(
    "--delete-orphans",
    is_flag=True,
    help="With --repair: delete orphans that cannot be indexed (the only deletion fsck does).",
)
@click.pass_context
def fsck_command(ctx: click.Context, repair: bool, delete_orphans: bool) -> None:
    """Check that index and blobs agree: missing, corrupt and orphan blobs, stale counts."""
    from klinika.backup import fsck
    from klinika.runtime import Runtime

    with Runtime(settings_from(ctx)) as runtime, _progress("Checking") as progress:
        report = fsck(
            runtime.archive,
            repair=repair or delete_orphans,
            delete_orphans=delete_orphans,
            progress=progress,
        )
    _print_report(report)
    click.echo(
        f"{report.checked} instance(s) checked: {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt, {len(report.orphans)} orphan(s), "
        f"{len(report.stale_counts)} stale count(s)"
    )
    click.echo("clean" if report.clean else "problems found")
    whole = report.clean or (repair and report.whole_after_repair)
    ctx.exit(0 if whole else 1)


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    for name in ("missing", "corrupt", "orphans", "stale_counts", "repaired", "deleted"):
        for item in getattr(report, name):
            click.echo(f"{name}: {item}")


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
    """Add ``backup`` (create, verify, prune), ``restore``, ``fsck`` and ``compress``."""
    for command in (backup, restore, fsck_command, compress):
        cli.add_command(command)
