"""Reading and writing the report tables (SQLAlchemy Core). Every change takes the report row
first (:func:`bump`), so concurrent writers of one report queue there, and the one whose
revision is stale gets :class:`StaleReport` instead of overwriting."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from klinika.reports.errors import StaleReport
from klinika.reports.records import Draft, KeyImage, ReportVersion
from klinika.reports.schema import report_versions, reports
from klinika.reports.states import ReportState, VersionStatus, version_state

VERSION_COLUMNS = [c for c in report_versions.c if c.name != "pdf"]


def draft_values(draft: Draft) -> dict[str, Any]:
    """The columns of a version that a draft sets."""
    return {
        "language": draft.language,
        "template": draft.template,
        "sections": json.dumps(draft.full_sections(), ensure_ascii=False),
        "key_images": json.dumps([image.as_dict() for image in draft.key_images]),
    }


def report_row(connection: sa.Connection, study_uid: str) -> sa.Row[Any] | None:
    """The study's report row, if it has a report."""
    return connection.execute(
        sa.select(reports).where(reports.c.study_instance_uid == study_uid)
    ).first()


def latest(connection: sa.Connection, report_pk: int) -> sa.Row[Any]:
    """The newest version row of a report (a report always has one)."""
    return connection.execute(
        sa.select(*VERSION_COLUMNS)
        .where(report_versions.c.report_pk == report_pk)
        .order_by(report_versions.c.number.desc())
        .limit(1)
    ).one()


def create(connection: sa.Connection, study_uid: str, now: int) -> int:
    """Insert the report row; a concurrent creation turns into a stale-revision conflict."""
    try:
        with connection.begin_nested():
            return int(
                connection.execute(
                    sa.insert(reports)
                    .values(
                        study_instance_uid=study_uid, revision=1, created_at=now, updated_at=now
                    )
                    .returning(reports.c.pk)
                ).scalar_one()
            )
    except sa.exc.IntegrityError as exc:
        raise StaleReport(
            f"the report of study {study_uid} was just created by someone else", 1
        ) from exc


def check_revision(row: sa.Row[Any], expected: int | None) -> None:
    if expected != row.revision:
        raise StaleReport(
            f"the report changed since revision {expected} (now {row.revision}): reload it",
            row.revision,
        )


def bump(connection: sa.Connection, row: sa.Row[Any], now: int, **values: Any) -> None:
    """Move the revision on, only from the one the change was based on."""
    changed = connection.execute(
        sa.update(reports)
        .where(reports.c.pk == row.pk, reports.c.revision == row.revision)
        .values(revision=row.revision + 1, updated_at=now, **values)
    ).rowcount
    if changed != 1:
        raise StaleReport("the report changed meanwhile: reload it", row.revision + 1)


def version_of(row: sa.Row[Any]) -> ReportVersion:
    return ReportVersion(
        number=row.number,
        status=VersionStatus(row.status),
        language=row.language,
        template=row.template,
        sections=json.loads(row.sections),
        key_images=tuple(KeyImage.from_dict(item) for item in json.loads(row.key_images)),
        amendment_reason=row.amendment_reason,
        author=row.author,
        created_at=row.created_at,
        updated_at=row.updated_at,
        signed_by=row.signed_by,
        signed_by_name=row.signed_by_name,
        signed_at=row.signed_at,
        pdf_sop_instance_uid=row.pdf_sop_instance_uid,
        stored_in_study=bool(row.stored_in_study),
    )


def versions(connection: sa.Connection, report_pk: int) -> list[ReportVersion]:
    """Every version of a report, oldest first (without the PDFs)."""
    found = connection.execute(
        sa.select(*VERSION_COLUMNS)
        .where(report_versions.c.report_pk == report_pk)
        .order_by(report_versions.c.number)
    ).all()
    return [version_of(row) for row in found]


def stored_pdf(connection: sa.Connection, study_uid: str, number: int) -> bytes | None:
    """The PDF made when version ``number`` was signed, if it is signed."""
    value = connection.execute(
        sa.select(report_versions.c.pdf)
        .join(reports, report_versions.c.report_pk == reports.c.pk)
        .where(reports.c.study_instance_uid == study_uid, report_versions.c.number == number)
    ).scalar()
    return bytes(value) if value is not None else None


def states(connection: sa.Connection, study_uids: list[str]) -> dict[str, ReportState]:
    """The state of each study's newest version (studies without a report are absent)."""
    statement = (
        sa.select(reports.c.study_instance_uid, report_versions.c.number, report_versions.c.status)
        .join(report_versions, report_versions.c.report_pk == reports.c.pk)
        .where(reports.c.study_instance_uid.in_(study_uids))
        .order_by(reports.c.study_instance_uid, report_versions.c.number)
    )
    return {
        uid: version_state(n, VersionStatus(status))
        for uid, n, status in connection.execute(statement)
    }


def published(
    connection: sa.Connection,
    study_uids: list[str] | None,
    states: frozenset[ReportState],
    limit: int,
    offset: int,
) -> tuple[list[str], int]:
    """Studies whose report has a signed version whose state (``final``: the first signed
    version is the newest signed one; ``amended``: a later one is) is in ``states``, newest
    signature first; of ``study_uids`` only, when given. Returns a page and the total."""
    newest = (
        sa.select(
            reports.c.study_instance_uid.label("study_uid"),
            sa.func.max(report_versions.c.number).label("number"),
            sa.func.max(report_versions.c.signed_at).label("signed_at"),
        )
        .join(report_versions, report_versions.c.report_pk == reports.c.pk)
        .where(report_versions.c.status == VersionStatus.FINAL.value)
        .group_by(reports.c.study_instance_uid)
    )
    if study_uids is not None:
        newest = newest.where(reports.c.study_instance_uid.in_(study_uids))
    signed = newest.subquery()
    wanted = []
    if ReportState.FINAL in states:
        wanted.append(signed.c.number == 1)
    if ReportState.AMENDED in states:
        wanted.append(signed.c.number > 1)
    where = sa.or_(*wanted) if wanted else sa.false()
    total = connection.execute(sa.select(sa.func.count()).select_from(signed).where(where))
    page = connection.execute(
        sa.select(signed.c.study_uid)
        .where(where)
        .order_by(signed.c.signed_at.desc(), signed.c.study_uid)
        .limit(limit)
        .offset(offset)
    )
    return list(page.scalars()), int(total.scalar_one())
