"""The :class:`ReportService`: one report per study, its versions, its PDF, and the signed PDF
stored back into the study.

Lifecycle: a doctor saves drafts (version 1), signs (version 1 becomes final), may amend
(version 2 starts as a draft copy of version 1, and is final once signed); earlier versions
stay readable. Each change names the report ``revision`` it was based on; a change based on
an older revision is refused (:class:`StaleReport`), never merged or overwritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from pydicom.uid import generate_uid

from klinika.archive import Archive, StoreStatus
from klinika.audit import Actor, AuditTrail, Outcome
from klinika.db import Database
from klinika.errors import KlinikaError, NotFound
from klinika.i18n import translator
from klinika.reports import labels, rows
from klinika.reports.document import Clinic, report_document
from klinika.reports.encapsulated import PdfInstance, encapsulated_pdf
from klinika.reports.errors import InvalidReport, ReportStateError, StaleReport
from klinika.reports.header import StudyHeader, study_header
from klinika.reports.pdf import render_key_image, render_pdf
from klinika.reports.records import Draft, KeyImage, ReportVersion, ReportView
from klinika.reports.schema import report_versions
from klinika.reports.states import ReportState, VersionStatus
from klinika.reports.templates import (
    TEMPLATE_NAMES,
    TEMPLATE_SECTIONS,
    TEMPLATES,
    template_key,
    template_text,
)

log = logging.getLogger(__name__)


class ReportService:
    """Reports of one installation.

    Parameters
    ----------
    database, archive, audit
        Where reports are kept, where studies (and the signed PDFs) live, where events go.
    clinic
        The PDF's letterhead.
    clock
        Unix seconds now (tests pass their own).
    """

    def __init__(
        self,
        database: Database,
        archive: Archive,
        audit: AuditTrail,
        clinic: Clinic,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.archive = archive
        self.audit = audit
        self.clinic = clinic
        self.clock = clock

    # ------------------------------------------------------------------ reading
    def statuses(self, study_uids: list[str]) -> dict[str, ReportState]:
        """Each study's report state for lists (``draft``, ``final``, ``amended``); studies
        without a report are absent. Not audited: it shows no report content."""
        if not study_uids:
            return {}
        with self.database.reader.connect() as connection:
            return rows.states(connection, study_uids)

    def published(
        self,
        study_uids: list[str] | None = None,
        *,
        states: frozenset[ReportState] = frozenset({ReportState.FINAL, ReportState.AMENDED}),
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[str], int]:
        """Studies with a signed report in one of ``states`` (of the newest signed version),
        newest signature first, of ``study_uids`` only when given: a page and the total.
        Not audited: it names studies, not report content (reading one is, via
        :meth:`current`)."""
        if study_uids is not None and not study_uids:
            return [], 0
        with self.database.reader.connect() as connection:
            return rows.published(connection, study_uids, states, limit, offset)

    def merge_refusal(self, study_uid: str) -> str | None:
        """Why the study may not be merged into another (study management), or None: a
        report is about one study, so a study with a report (a draft too) stays itself."""
        state = self.statuses([study_uid]).get(study_uid)
        if state is None:
            return None
        return (
            f"study {study_uid} has a report ({state}); merge the other study into it instead, "
            "or split its series out"
        )

    def header(self, study_uid: str) -> StudyHeader:
        """The study's patient and study header, read from the index now."""
        return study_header(self.archive, study_uid)

    def current(
        self, study_uid: str, actor: Actor, *, drafts: bool, source: str | None = None
    ) -> ReportView:
        """The newest version ``actor`` may read (drafts only when ``drafts``).

        Raises
        ------
        NotFound
            When the study is unknown or has no report the actor may read.
        """
        with self._audited(actor, "report:view", study_uid, source) as details:
            view = self._view(study_uid, drafts=drafts)
            details.update(version=view.version.number, status=view.status)
            return view

    def versions(
        self, study_uid: str, actor: Actor, *, drafts: bool, source: str | None = None
    ) -> list[ReportVersion]:
        """Every version ``actor`` may read, oldest first."""
        with self._audited(actor, "report:view", study_uid, source) as details:
            details["versions"] = True
            found = self._visible(study_uid, drafts)
            if not found:
                raise NotFound(f"study {study_uid} has no report{'' if drafts else ' signed'}")
            return found

    def version(
        self,
        study_uid: str,
        number: int,
        actor: Actor,
        *,
        drafts: bool,
        source: str | None = None,
    ) -> ReportVersion:
        """Version ``number`` of the study's report, if ``actor`` may read it."""
        with self._audited(actor, "report:view", study_uid, source) as details:
            details["version"] = number
            for version in self._visible(study_uid, drafts):
                if version.number == number:
                    return version
            raise NotFound(f"the report of study {study_uid} has no version {number}")

    def templates(self, language: str, modality: str | None = None) -> dict[str, Any]:
        """The templates (name in ``language``, sections in ``language``), and the one that
        suits ``modality``."""
        speak = translator(language)
        return {
            "suggested": template_key(modality),
            "templates": [
                {
                    "key": key,
                    "name": speak.gettext(TEMPLATE_NAMES[key]),
                    "sections": template_text(key, language),
                }
                for key in TEMPLATES
            ],
            "sections": list(TEMPLATE_SECTIONS),
        }

    # ------------------------------------------------------------------ changes
    def save_draft(
        self,
        study_uid: str,
        draft: Draft,
        actor: Actor,
        *,
        expected_revision: int | None,
        source: str | None = None,
    ) -> ReportView:
        """Create the report (``expected_revision`` None or 0) or change its draft.

        Raises
        ------
        StaleReport
            The report changed since ``expected_revision``.
        ReportStateError
            The newest version is signed (amend first).
        InvalidReport
            A key image that is not in the study.
        """
        with self._audited(actor, "report:save", study_uid, source) as details:
            self.header(study_uid)  # the study exists
            for image in draft.key_images:
                self._check_key_image(study_uid, image)
            now = int(self.clock())
            values = rows.draft_values(draft) | {"updated_at": now}
            with self.database.writer.begin() as connection:
                row = rows.report_row(connection, study_uid)
                if row is None:
                    if expected_revision:
                        raise StaleReport(f"study {study_uid} has no report any more", 0)
                    pk = rows.create(connection, study_uid, now)
                    connection.execute(
                        sa.insert(report_versions).values(
                            values
                            | {
                                "report_pk": pk,
                                "number": 1,
                                "status": VersionStatus.DRAFT.value,
                                "author": actor.name,
                                "created_at": now,
                            }
                        )
                    )
                else:
                    latest = rows.latest(connection, row.pk)
                    rows.check_revision(row, expected_revision)
                    if latest.status != VersionStatus.DRAFT:
                        raise ReportStateError(
                            f"version {latest.number} is signed: amend the report to change it"
                        )
                    rows.bump(connection, row, now)  # first: concurrent writers queue on this row
                    connection.execute(
                        sa.update(report_versions)
                        .where(report_versions.c.pk == latest.pk)
                        .values(values)
                    )
            view = self._view(study_uid, drafts=True)
            details.update(version=view.version.number, revision=view.revision)
            return view

    def add_key_image(
        self,
        study_uid: str,
        image: KeyImage,
        actor: Actor,
        *,
        language: str = "en",
        source: str | None = None,
    ) -> ReportView:
        """Add a key image to the draft (the viewer's Key image button when no editor of the
        study is open), starting the report when there is none; an image already chosen is
        not added twice. Saved as :meth:`save_draft` saves (``report:save``).

        Raises
        ------
        ReportStateError
            The newest version is signed (amend first).
        """
        with self.database.reader.connect() as connection:
            row = rows.report_row(connection, study_uid)
            latest = rows.version_of(rows.latest(connection, row.pk)) if row else None
        if latest is None or row is None:
            return self.save_draft(
                study_uid,
                Draft(language=language, key_images=(image,)),
                actor,
                expected_revision=None,
                source=source,
            )
        if latest.signed:
            raise ReportStateError(
                f"version {latest.number} is signed: amend the report to add key images"
            )
        chosen = {(i.sop_instance_uid, i.frame) for i in latest.key_images}
        images = latest.key_images
        if (image.sop_instance_uid, image.frame) not in chosen:
            images = (*images, image)
        draft = Draft(latest.language, latest.template, dict(latest.sections), images)
        return self.save_draft(
            study_uid, draft, actor, expected_revision=row.revision, source=source
        )

    def sign(
        self,
        study_uid: str,
        actor: Actor,
        *,
        signer_name: str,
        expected_revision: int,
        source: str | None = None,
    ) -> ReportView:
        """Make the newest draft final: signer and time recorded, PDF made, and the PDF stored
        into the study as an Encapsulated PDF instance (``Archive.store``)."""
        with self._audited(actor, "report:sign", study_uid, source) as details:
            header = self.header(study_uid)
            with self.database.reader.connect() as connection:
                row = rows.report_row(connection, study_uid)
                if row is None:
                    raise NotFound(f"study {study_uid} has no report to sign")
                latest_row = rows.latest(connection, row.pk)
            rows.check_revision(row, expected_revision)
            latest = rows.version_of(latest_row)
            if latest.signed:
                raise ReportStateError(f"version {latest.number} is already signed")
            if not any(text.strip() for text in latest.sections.values()):
                raise InvalidReport("an empty report cannot be signed")
            now = int(self.clock())
            signed = replace(
                latest,
                status=VersionStatus.FINAL,
                signed_by=actor.name,
                signed_by_name=signer_name or actor.name,
                signed_at=now,
            )
            pdf = self._render(study_uid, header, signed)
            sop_uid = generate_uid()
            series_uid = row.pdf_series_uid or generate_uid()
            with self.database.writer.begin() as connection:
                current = rows.report_row(connection, study_uid)
                assert current is not None
                rows.check_revision(current, expected_revision)
                rows.bump(connection, current, now, pdf_series_uid=series_uid)
                connection.execute(
                    sa.update(report_versions)
                    .where(report_versions.c.pk == latest_row.pk)
                    .values(
                        status=VersionStatus.FINAL.value,
                        signed_by=signed.signed_by,
                        signed_by_name=signed.signed_by_name,
                        signed_at=now,
                        updated_at=now,
                        pdf=pdf,
                        pdf_sop_instance_uid=sop_uid,
                    )
                )
            stored = self._store_pdf(study_uid, signed, pdf, series_uid, sop_uid)
            if stored:
                with self.database.writer.begin() as connection:
                    connection.execute(
                        sa.update(report_versions)
                        .where(report_versions.c.pk == latest_row.pk)
                        .values(stored_in_study=True)
                    )
            details.update(version=signed.number, sop_instance_uid=sop_uid, stored=stored)
            return self._view(study_uid, drafts=True)

    def amend(
        self,
        study_uid: str,
        actor: Actor,
        *,
        expected_revision: int,
        reason: str,
        source: str | None = None,
    ) -> ReportView:
        """Start the next version as a draft copy of the signed one (which stays readable).

        Raises
        ------
        InvalidReport
            Without a reason (a signed report is changed only for a stated reason), or with
            one longer than 2000 characters.
        """
        with self._audited(actor, "report:amend", study_uid, source) as details:
            if not reason.strip():
                raise InvalidReport("an amendment needs a reason")
            if len(reason) > 2000:
                raise InvalidReport("the reason for amendment is longer than 2000 characters")
            now = int(self.clock())
            with self.database.writer.begin() as connection:
                row = rows.report_row(connection, study_uid)
                if row is None:
                    raise NotFound(f"study {study_uid} has no report to amend")
                rows.check_revision(row, expected_revision)
                latest = rows.latest(connection, row.pk)
                if latest.status != VersionStatus.FINAL:
                    raise ReportStateError(
                        f"version {latest.number} is a draft: sign it, or edit it, instead"
                    )
                rows.bump(connection, row, now)  # first: concurrent writers queue on this row
                connection.execute(
                    sa.insert(report_versions).values(
                        report_pk=row.pk,
                        number=latest.number + 1,
                        status=VersionStatus.DRAFT.value,
                        language=latest.language,
                        template=latest.template,
                        sections=latest.sections,
                        key_images=latest.key_images,
                        amendment_reason=reason.strip(),
                        author=actor.name,
                        created_at=now,
                        updated_at=now,
                    )
                )
            view = self._view(study_uid, drafts=True)
            details.update(version=view.version.number, reason=reason.strip())
            return view

    # ------------------------------------------------------------------ PDF
    def pdf(
        self,
        study_uid: str,
        actor: Actor,
        *,
        number: int | None = None,
        drafts: bool = True,
        source: str | None = None,
    ) -> tuple[bytes, ReportVersion]:
        """The PDF of version ``number`` (default: the newest readable one).

        A signed version's PDF is the one made when it was signed (the same bytes as the
        instance stored in the study); a draft's is made now, marked as a draft.
        """
        with self._audited(actor, "report:pdf", study_uid, source) as details:
            visible = self._visible(study_uid, drafts)
            if not visible:
                raise NotFound(f"study {study_uid} has no report")
            if number is None:
                version = visible[-1]
            else:
                matching = [v for v in visible if v.number == number]
                if not matching:
                    raise NotFound(f"the report of study {study_uid} has no version {number}")
                version = matching[0]
            details.update(version=version.number, status=version.status)
            stored = self._stored_pdf(study_uid, version.number) if version.signed else None
            if stored is not None:
                return stored, version
            return self._render(study_uid, self.header(study_uid), version), version

    def _render(self, study_uid: str, header: StudyHeader, version: ReportVersion) -> bytes:
        images = [render_key_image(self.archive, study_uid, image) for image in version.key_images]
        return render_pdf(
            report_document(self.clinic, header, version),
            images=images,
            logo=self.clinic.logo,
            timestamp=version.signed_at or version.updated_at,
        )

    def _stored_pdf(self, study_uid: str, number: int) -> bytes | None:
        with self.database.reader.connect() as connection:
            return rows.stored_pdf(connection, study_uid, number)

    def _store_pdf(
        self, study_uid: str, version: ReportVersion, pdf: bytes, series_uid: str, sop_uid: str
    ) -> bool:
        """Store the signed PDF into the study through the one ingest path."""
        study = self.archive.instances(study_uid)[0]
        title = translator(version.language).gettext(labels.TITLE)
        part10 = encapsulated_pdf(
            PdfInstance(
                pdf=pdf,
                study_metadata_json=study.metadata_json,
                series_uid=series_uid,
                sop_instance_uid=sop_uid,
                instance_number=version.number,
                title=title,
                signed_at=version.signed_at or int(self.clock()),
            )
        )
        outcome = self.archive.store(part10)
        if outcome.status in (StoreStatus.STORED, StoreStatus.REPLACED, StoreStatus.DUPLICATE):
            return True
        log.error("report PDF of study %s not stored: %s", study_uid, outcome.message)
        return False

    # ------------------------------------------------------------------ helpers
    def _check_key_image(self, study_uid: str, image: KeyImage) -> None:
        try:
            record = self.archive.instances(study_uid, image.series_uid, image.sop_instance_uid)[0]
        except NotFound as exc:
            raise InvalidReport(
                f"key image {image.sop_instance_uid} is not an instance of study {study_uid}"
            ) from exc
        if image.frame > record.number_of_frames:
            raise InvalidReport(f"key image {image.sop_instance_uid} has no frame {image.frame}")

    def _visible(self, study_uid: str, drafts: bool) -> list[ReportVersion]:
        with self.database.reader.connect() as connection:
            row = rows.report_row(connection, study_uid)
            if row is None:
                return []
            versions = rows.versions(connection, row.pk)
        return versions if drafts else [v for v in versions if v.signed]

    def _view(self, study_uid: str, *, drafts: bool) -> ReportView:
        header = self.header(study_uid)
        with self.database.reader.connect() as connection:
            row = rows.report_row(connection, study_uid)
        versions = self._visible(study_uid, drafts)
        if row is None or not versions:
            what = "a report" if drafts else "a signed report"
            raise NotFound(f"study {study_uid} has no {what} yet")
        return ReportView(study_uid, row.revision, versions[-1], tuple(versions), header.as_dict())

    @contextmanager
    def _audited(
        self, actor: Actor, action: str, study_uid: str, source: str | None
    ) -> Iterator[dict[str, Any]]:
        """Record ``action`` once: success, or failure with the error."""
        details: dict[str, Any] = {}
        try:
            yield details
        except KlinikaError as exc:
            details["error"] = str(exc)
            self.audit.record(
                actor, action, Outcome.FAILURE, study_uid=study_uid, source=source, details=details
            )
            raise
        self.audit.record(
            actor, action, Outcome.SUCCESS, study_uid=study_uid, source=source, details=details
        )
