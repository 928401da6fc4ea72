"""``klinika echo / send / query / retrieve``: Klinika as a DICOM client."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from klinika.cli.context import settings_from
from klinika.config import RemoteAE
from klinika.errors import ConfigError, KlinikaError


def _peer(ctx: click.Context, text: str) -> RemoteAE:
    """``TITLE@HOST:PORT``, or the title of a known DICOM node (configured or added in the
    console: the same lookup the server uses)."""
    if "@" not in text:
        from sqlalchemy.exc import SQLAlchemyError

        from klinika.auth.nodes import NodeRegistry
        from klinika.db import Database

        settings = settings_from(ctx)
        for known in settings.modalities:
            if known.title == text:
                return known
        database = Database(settings.database_url)
        try:
            node = NodeRegistry(database, None, settings.modalities).find(text)
        except SQLAlchemyError:  # no index yet (nothing ever served here): configured only
            node = None
        finally:
            database.dispose()
        if node is not None:
            return node.remote
        raise click.BadParameter(f"{text} is not a known DICOM node; use TITLE@HOST:PORT")
    try:
        return RemoteAE.parse(text)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


def tls_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tls`` and the files it may use (DICOM TLS, PS3.15 B.1)."""
    options = [
        click.option("--tls", is_flag=True, help="Use DICOM TLS (TLS 1.2 or newer)."),
        click.option(
            "--tls-ca",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CA certificate(s) the peer's certificate must chain to (default: the system's).",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Our client certificate (PEM), for peers that ask for one.",
        ),
        click.option(
            "--tls-key",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="The private key of --tls-cert (PEM, unencrypted).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _tls_context(
    tls: bool, ca: Path | None, cert: Path | None, key: Path | None
) -> ssl.SSLContext | None:
    from klinika.dimse.tls import client_tls_context

    if not tls:
        if ca or cert or key:
            raise click.UsageError("--tls-ca, --tls-cert and --tls-key go with --tls")
        return None
    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        return client_tls_context(ca, cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise click.ClickException(f"cannot use the TLS files: {exc}") from exc


@click.command()
@click.argument("peer")
@tls_options
@click.pass_context
def echo(
    ctx: click.Context,
    peer: str,
    tls: bool,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """C-ECHO a remote AE (TITLE@HOST:PORT or a configured title)."""
    from klinika.dimse.scu import echo as send_echo

    context = _tls_context(tls, tls_ca, tls_cert, tls_key)
    try:
        status = send_echo(settings_from(ctx), _peer(ctx, peer), context)
    except KlinikaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"C-ECHO status 0x{status:04X}")
    if status:
        ctx.exit(1)


@click.command()
@click.argument("study_uid")
@click.option("--to", "peer", required=True, help="TITLE@HOST:PORT or a configured title.")
@tls_options
@click.pass_context
def send(
    ctx: click.Context,
    study_uid: str,
    peer: str,
    tls: bool,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """C-STORE a study to a remote AE."""
    from klinika.dimse.scu import send as send_study
    from klinika.runtime import Runtime

    context = _tls_context(tls, tls_ca, tls_cert, tls_key)
    with Runtime(settings_from(ctx)) as runtime:
        try:
            result = send_study(
                runtime.settings, runtime.archive, study_uid, _peer(ctx, peer), context
            )
        except KlinikaError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"sent {result.sent}, failed {len(result.failed)}")
    for sop, status in result.failed:
        click.echo(f"  failed {sop}: status 0x{status:04X}", err=True)
    if result.failed:
        ctx.exit(1)


@click.command()
@click.argument("peer")
@click.option(
    "--level",
    default="STUDY",
    show_default=True,
    type=click.Choice(["PATIENT", "STUDY", "SERIES", "IMAGE"], case_sensitive=False),
)
@click.option("-k", "--key", "keys", multiple=True, help="Keyword=value (empty value: return it).")
@click.pass_context
def query(ctx: click.Context, peer: str, level: str, keys: tuple[str, ...]) -> None:
    """C-FIND on a remote AE; prints one line per match."""
    from klinika.dimse.scu import query as send_query

    wanted = {"PatientName": "", "PatientID": "", "StudyInstanceUID": "", "StudyDate": ""}
    for key in keys:
        keyword, _, value = key.partition("=")
        wanted[keyword.strip()] = value
    try:
        found = send_query(
            settings_from(ctx),
            _peer(ctx, peer),
            level,
            wanted,
            patient_root=level.upper() == "PATIENT",
        )
    except KlinikaError as exc:
        raise click.ClickException(str(exc)) from exc
    for match in found:
        click.echo("\t".join(str(match.get(k, "")) for k in wanted))
    click.echo(f"{len(found)} match(es)", err=True)


@click.command()
@click.argument("peer")
@click.argument("study_uid")
@click.pass_context
def retrieve(ctx: click.Context, peer: str, study_uid: str) -> None:
    """C-MOVE a study from a remote AE into Klinika.

    The instances arrive at Klinika's running DIMSE listener (`klinika serve` or
    `klinika dimse`), so the remote must know our AE title with that listener's address.
    """
    from klinika.dimse.scu import retrieve as send_move

    try:
        result = send_move(settings_from(ctx), _peer(ctx, peer), study_uid)
    except KlinikaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"retrieved {result.completed + result.warnings}, failed {result.failed}")
    if result.failed:
        ctx.exit(1)


def register(cli: click.Group) -> None:
    for command in (echo, send, query, retrieve):
        cli.add_command(command)
