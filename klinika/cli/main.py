"""``klinika``: serve, import, demo, and the commands other rooms register."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from klinika import __version__
from klinika.cli.context import settings_from
from klinika.cli.help import plain_help
from klinika.config import RemoteAE, Settings, load_settings
from klinika.errors import ConfigError

if TYPE_CHECKING:
    from klinika.cli.dimse_processes import DimseProcesses
    from klinika.hl7 import Hl7Listener
    from klinika.runtime import Runtime


@click.group()
@click.version_option(__version__, prog_name="klinika")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (also KLINIKA_CONFIG).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder (also KLINIKA_DATA_DIR).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, data_dir: Path | None) -> None:
    """Klinika PACS."""
    from klinika.observability import configure_logging

    try:
        settings = load_settings(toml_path=config_path, data_dir=data_dir)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    ctx.ensure_object(dict)["settings"] = settings
    try:  # one logging setup for every command: servers and jobs alike
        configure_logging(settings)
    except OSError as exc:
        raise click.UsageError(f"cannot write the log file {settings.log_file}: {exc}") from exc


@cli.command()
@click.option("--host", help="HTTP address (default 127.0.0.1).")
@click.option("--port", type=int, help="HTTP port (default 8042).")
@click.option(
    "--dimse/--no-dimse",
    default=True,
    show_default=True,
    help="Also run the DIMSE listener in this process.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="HTTP worker processes (more than 1: run DIMSE apart with `klinika dimse`).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, dimse: bool, workers: int
) -> None:
    """Run the HTTP server (DICOMweb, viewer, API) and the DIMSE listener."""
    from klinika.dimse import start_dimse_server
    from klinika.runtime import Runtime
    from klinika.web.server import PortBusy, ensure_port_free, run_server

    settings = settings_from(ctx)
    try:  # before anything starts or says "HTTP on …"
        ensure_port_free(host or settings.http_host, port or settings.http_port)
    except PortBusy as exc:
        raise click.ClickException(str(exc)) from exc
    if workers > 1:
        from klinika.web.server import run_workers

        # before any metric exists: the workers and this process share the metric files
        _multiprocess_metrics(settings)
        # migrate once before the workers start; scheduled backups run in this parent process,
        # and so does the metrics listener (it adds up every worker's files)
        with Runtime(settings) as runtime, _operations(settings, runtime):
            run_workers(
                settings,
                host=host or settings.http_host,
                port=port or settings.http_port,
                workers=workers,
            )
        return
    processes = None
    if dimse and settings.dimse_workers > 1:
        _multiprocess_metrics(settings)  # the DIMSE processes' metrics add up with this one's
        processes = _start_dimse_processes(settings)
    with Runtime(settings, prepare=processes is None) as runtime, _operations(settings, runtime):
        listener = None
        if dimse and processes is None:
            listener = start_dimse_server(
                runtime.archive,
                runtime.auth,
                runtime.audit,
                settings,
                metrics=runtime.metrics,
                schedule=runtime.schedule,
            )
        if processes is not None:
            processes.supervise_in_background()
        try:
            run_server(
                settings, runtime, host=host or settings.http_host, port=port or settings.http_port
            )
        finally:
            if listener is not None:
                listener.shutdown()
            if processes is not None:
                processes.stop()


def _multiprocess_metrics(settings: Settings) -> None:
    """Multi-process metrics for ``serve --workers``: ``PROMETHEUS_MULTIPROC_DIR`` when set
    (a tmpfs in containers), else a folder under the data folder; emptied at start."""
    import os

    from klinika.observability import use_multiprocess

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    use_multiprocess(Path(given) if given else settings.data_dir.resolve() / "run" / "metrics")


@contextlib.contextmanager
def _operations(settings: Settings, runtime: Runtime) -> Iterator[None]:
    """What a serving process runs beside its listener: the backup scheduler, the
    installation's metric probes, with ``metrics_port`` the metrics listener and with
    ``hl7_port`` the HL7 MLLP listener (once per installation, whatever the workers)."""
    from klinika.backup.schedule import start_backup_scheduler
    from klinika.observability import start_metrics_server
    from klinika.web.telemetry import install_state_probes

    # jobs a stopped server left running did not finish: say so on the jobs page
    interrupted = runtime.jobs.mark_interrupted()
    if interrupted:
        logging.getLogger("klinika").warning("%d DICOM jobs were interrupted", interrupted)
    install_state_probes(
        runtime.metrics,
        settings,
        database=runtime.database,
        blobs=runtime.blobs,
        archive=runtime.archive,
        audit=runtime.audit,
    )
    server = None
    if settings.metrics_port:
        try:
            server = start_metrics_server(
                runtime.metrics, settings.metrics_host, settings.metrics_port
            )
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen for metrics on {settings.metrics_host}:{settings.metrics_port}: "
                f"{exc}"
            ) from exc

    def counted(ok: bool) -> None:
        runtime.metrics.backups.labels("success" if ok else "failure").inc()

    scheduler = start_backup_scheduler(settings, runtime.audit, on_backup=counted)
    hl7 = _start_hl7(settings, runtime) if settings.hl7_port else None
    try:
        yield
    finally:
        if hl7 is not None:
            hl7.shutdown()
        if scheduler is not None:
            scheduler.stop()
        if server is not None:
            server.shutdown()


def _start_hl7(settings: Settings, runtime: Runtime) -> Hl7Listener:
    """The HL7 v2 MLLP listener on ``hl7_host:hl7_port``, applying what ``hl7_senders`` send."""
    from klinika.hl7 import Hl7Listener, Hl7Service

    service = Hl7Service(
        runtime.archive,
        runtime.management,
        runtime.schedule,
        runtime.audit,
        senders=settings.hl7_allowed_senders,
        application=settings.ae_title,
    )
    try:
        return Hl7Listener(service, settings.hl7_host, settings.hl7_port).start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen for HL7 on {settings.hl7_host}:{settings.hl7_port}: {exc}"
        ) from exc


def _start_dimse_processes(settings: Settings) -> DimseProcesses | None:
    """With ``dimse_workers`` above 1, prepare the installation once and fork the DIMSE
    processes (before this process starts any thread); None: run DIMSE in this process."""
    from klinika.cli.dimse_processes import DimseProcesses
    from klinika.runtime import Runtime

    if settings.dimse_workers <= 1:
        return None
    Runtime(settings).close()  # migrate and clean up once, before the workers exist
    processes = DimseProcesses(settings, settings.dimse_workers)
    processes.start()
    return processes


@cli.command(name="dimse")
@click.pass_context
def dimse_only(ctx: click.Context) -> None:
    """Run only the DIMSE listener (production: next to separate HTTP workers), in
    ``dimse_workers`` processes."""
    import signal
    import threading

    from klinika.cli.dimse_processes import StopSignal
    from klinika.dimse import start_dimse_server
    from klinika.observability import start_metrics_server
    from klinika.runtime import Runtime

    settings = settings_from(ctx)
    if settings.dimse_workers > 1:
        if settings.metrics_port:
            _multiprocess_metrics(settings)  # the workers' metrics, added up here
        processes = _start_dimse_processes(settings)
        assert processes is not None
        stop = StopSignal(signal.SIGTERM)
        with contextlib.ExitStack() as cleanup:
            if settings.metrics_port:
                runtime = cleanup.enter_context(Runtime(settings, prepare=False))
                server = start_metrics_server(
                    runtime.metrics, settings.metrics_host, settings.metrics_port
                )
                cleanup.callback(server.shutdown)
            try:
                while not stop.wait(1.0):
                    processes.reap()
            except KeyboardInterrupt:
                pass
            finally:
                processes.stop()
        return
    with Runtime(settings) as runtime:
        listener = start_dimse_server(
            runtime.archive,
            runtime.auth,
            runtime.audit,
            settings,
            metrics=runtime.metrics,
            schedule=runtime.schedule,
        )
        metrics = (
            start_metrics_server(runtime.metrics, settings.metrics_host, settings.metrics_port)
            if settings.metrics_port
            else None
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            listener.shutdown()
            if metrics is not None:
                metrics.shutdown()


@cli.command(name="import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--jobs", "-j", default=2, show_default=True, help="Parallel workers.")
@click.pass_context
def import_command(ctx: click.Context, paths: tuple[Path, ...], jobs: int) -> None:
    """Store DICOM files, folders and ZIP archives into the archive."""
    from klinika.archive.sources import iter_sources
    from klinika.cli.ingest import import_paths
    from klinika.runtime import Runtime, freeze_startup_heap

    total = sum(1 for _ in iter_sources(paths))
    if total == 0:
        click.echo(
            "warning: no files found in " + ", ".join(str(path) for path in paths) + "; "
            "nothing was imported",
            err=True,
        )
        return
    with (
        Runtime(settings_from(ctx)) as runtime,
        click.progressbar(length=total, label="Importing", show_pos=True) as bar,
    ):
        freeze_startup_heap()  # thousands of instances: collections skip start-up's objects
        summary = import_paths(runtime.archive, paths, jobs=jobs, on_progress=bar.update)
    _print_summary(summary)


@cli.command(name="export")
@click.argument("study_uid")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ZIP file to write (DICOM files and a DICOMDIR).",
)
@click.option("--series", "series_uid", help="Only this series of the study.")
@click.option(
    "--deidentify",
    is_flag=True,
    help="De-identify (PS3.15 Annex E Basic Profile, modified dates, clean descriptors, "
    "patient characteristics kept).",
)
@click.pass_context
def export_command(
    ctx: click.Context, study_uid: str, out: Path, series_uid: str | None, deidentify: bool
) -> None:
    """Write a study (or one series) as a ZIP of DICOM files with a DICOMDIR."""
    from klinika.audit import Actor, Outcome
    from klinika.dicom.deidentify import Deidentifier
    from klinika.errors import NotFound
    from klinika.export import dicom_zip
    from klinika.runtime import Runtime

    with Runtime(settings_from(ctx)) as runtime:
        try:
            chunks = dicom_zip(
                runtime.archive, study_uid, series_uid, Deidentifier() if deidentify else None
            )
        except NotFound as exc:
            raise click.ClickException(str(exc)) from exc
        partial = out.with_name(out.name + ".partial")
        with partial.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        partial.replace(out)
        runtime.audit.record(
            Actor("cli", "system"),
            "dicom:export",
            Outcome.SUCCESS,
            study_uid=study_uid,
            series_uid=series_uid,
            details={"format": "dicom-deidentified" if deidentify else "dicom", "to": "file"},
        )
    click.echo(f"{out} ({out.stat().st_size:,} bytes)")


def _print_summary(summary) -> None:  # type: ignore[no-untyped-def]
    counts = summary.counts
    click.echo(
        f"stored {counts['stored'] + counts['replaced']}, duplicate {counts['duplicate']}, "
        f"rejected {counts['rejected']}"
    )
    for name, reason in summary.rejected[:50]:
        click.echo(f"  rejected {name}: {reason}", err=True)


@cli.command()
@click.option("--ct-slices", default=300, show_default=True, help="Slices in the demo CT.")
@click.option(
    "--serve/--no-serve", "then_serve", default=False, help="Start the server after loading."
)
@click.pass_context
def demo(ctx: click.Context, ct_slices: int, then_serve: bool) -> None:
    """Load the demo data set (CT volume, MR, CR, US cine), generated locally."""
    from klinika.cli.ingest import import_paths
    from klinika.demo import demo_file_count, generate_demo
    from klinika.runtime import Runtime

    settings = settings_from(ctx)
    workdir = Path(tempfile.mkdtemp(prefix="klinika-demo-"))
    try:
        with click.progressbar(length=demo_file_count(ct_slices), label="Generating") as bar:
            generate_demo(workdir, ct_slices=ct_slices, progress=lambda _n: bar.update(1))
        with Runtime(settings) as runtime:
            with click.progressbar(length=demo_file_count(ct_slices), label="Importing") as bar:
                summary = import_paths(runtime.archive, [workdir], on_progress=bar.update)
            password = runtime.auth.create_first_admin()
        _print_summary(summary)
        from klinika.viewer.install import ViewerInstallError, install

        try:
            click.echo(f"OHIF viewer in {install(settings.cache_path).root}")
        except ViewerInstallError as exc:
            click.secho(f"the viewer could not be installed: {exc}", fg="red")
        if password:
            click.secho(
                f"Created the first administrator: user 'admin', password '{password}' "
                "(shown once; change it after logging in).",
                fg="yellow",
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if then_serve:
        ctx.find_root().obj["settings"] = _with_demo_workstation(settings)
        click.echo(
            f"DIMSE {settings.ae_title}@127.0.0.1:{settings.dimse_port}: any local AE may echo "
            f"and store; the AE title {DEMO_WORKSTATION.title} may also query and retrieve "
            f"(C-MOVE to {DEMO_WORKSTATION.title} sends to 127.0.0.1:{DEMO_WORKSTATION.port})."
        )
        ctx.invoke(serve)


#: The workstation the demo knows: query/retrieve needs a configured modality (docs/dimse.md).
DEMO_WORKSTATION = RemoteAE("DEMO", "127.0.0.1", 11112)


def _with_demo_workstation(settings: Settings) -> Settings:
    """The settings plus the demo workstation, unless a modality of that title is configured."""
    if any(m.title == DEMO_WORKSTATION.title for m in settings.modalities):
        return settings
    return dataclasses.replace(settings, modalities=(*settings.modalities, DEMO_WORKSTATION))


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Apply the database migrations."""
    from klinika.runtime import Runtime

    Runtime(settings_from(ctx)).close()
    click.echo("database is at the newest schema")


def _register_commands() -> None:
    from klinika.cli import (
        audit_commands,
        auth_commands,
        backup_commands,
        dimse_commands,
        storage_commands,
        viewer_commands,
    )

    audit_commands.register(cli)
    auth_commands.register(cli)
    backup_commands.register(cli)
    dimse_commands.register(cli)
    storage_commands.register(cli)
    viewer_commands.register(cli)


_register_commands()


@db.command(name="copy")
@click.argument("target_url")
@click.pass_context
def copy_command(ctx: click.Context, target_url: str) -> None:
    """Copy this installation's database (e.g. SQLite) to TARGET_URL (e.g. PostgreSQL), then
    check counts and a sample of blobs. Blobs stay where they are."""
    import random

    from klinika.db import Database
    from klinika.db.copy import copy_database
    from klinika.runtime import Runtime

    settings = settings_from(ctx)
    with Runtime(settings) as runtime:
        target = Database(target_url)
        try:
            copied = copy_database(runtime.database, target)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            target.dispose()
        keys = list(runtime.blobs.blob_keys())
        sample = random.sample(keys, min(len(keys), 50))
        damaged = [k for k in sample if hashlib.sha256(runtime.blobs.read(k)).hexdigest() != k]
    for name, count in copied.items():
        click.echo(f"{name}: {count}")
    click.echo(f"checked {len(sample)} blob(s): {len(damaged)} damaged")
    if damaged:
        ctx.exit(1)


plain_help(cli)  # after every command is added: --help shows no RST markup


def main() -> None:
    cli(auto_envvar_prefix=None)
