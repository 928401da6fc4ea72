"""Labels on studies: add, remove, list, and the studies a label marks. Each change is an
audit event (``study:label``, with the label added or removed); the edges authorize first."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.db import Database
from klinika.errors import InvalidQuery, NotFound
from klinika.index import labels as table
from klinika.index import schema

MAX_LABEL_CHARS = 32
#: letters and digits of any script, and space, ``-``, ``_``, ``.`` between them
_LABEL = re.compile(r"[\w][\w .\-]*", re.UNICODE)


class InvalidLabel(InvalidQuery):
    """A label that is empty, too long, or has characters other than letters, digits, space,
    ``-``, ``_`` and ``.``."""


def clean_label(text: str) -> str:
    """The label as stored: NFC, trimmed, inner runs of spaces as one.

    Raises
    ------
    InvalidLabel
        For an empty or over-long label, or one with other characters.
    """
    label = " ".join(unicodedata.normalize("NFC", text).split())
    if not label:
        raise InvalidLabel("a label cannot be empty")
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidLabel(f"a label has at most {MAX_LABEL_CHARS} characters")
    if not _LABEL.fullmatch(label):
        raise InvalidLabel("a label has letters, digits, spaces, '-', '_' and '.' only")
    return label


class StudyLabels:
    """The labels of one installation's studies."""

    def __init__(
        self, database: Database, audit: AuditTrail, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.audit = audit
        self.clock = clock

    def of(self, study_uids: Iterable[str]) -> dict[str, list[str]]:
        """Each study's labels (for lists; not audited: labels carry no patient data)."""
        with self.database.reader.connect() as connection:
            return table.labels_of(connection, study_uids)

    def known(self) -> list[tuple[str, int]]:
        """Every label in use, with how many studies carry it."""
        with self.database.reader.connect() as connection:
            return table.known_labels(connection)

    def studies(self, label: str) -> list[str]:
        """The studies carrying ``label``."""
        with self.database.reader.connect() as connection:
            return table.studies_labelled(connection, label)

    def add(self, study_uid: str, text: str, actor: Actor, *, source: str | None = None) -> str:
        """Put a label on a study (again: no change) and return it as stored."""
        return self._change(study_uid, text, actor, source, adding=True)

    def remove(self, study_uid: str, text: str, actor: Actor, *, source: str | None = None) -> str:
        """Take a label off a study (one it does not have: no change)."""
        return self._change(study_uid, text, actor, source, adding=False)

    def _change(
        self, study_uid: str, text: str, actor: Actor, source: str | None, *, adding: bool
    ) -> str:
        label = " ".join(unicodedata.normalize("NFC", text).split())
        verb = "added" if adding else "removed"
        try:
            label = clean_label(text) if adding else label
            with self.database.writer.begin() as connection:
                study = connection.execute(
                    sa.select(schema.studies.c.pk, schema.patients.c.patient_id)
                    .select_from(
                        schema.studies.outerjoin(
                            schema.patients, schema.studies.c.patient_pk == schema.patients.c.pk
                        )
                    )
                    .where(schema.studies.c.study_instance_uid == study_uid)
                ).first()
                if study is None:
                    raise NotFound(f"study {study_uid} is not in the archive")
                patient_id = study.patient_id
                if adding:
                    changed = table.add_label(
                        connection, study_uid, label, actor.name, int(self.clock())
                    )
                else:
                    changed = table.remove_label(connection, study_uid, label)
        except (InvalidQuery, NotFound) as exc:
            self.audit.record(
                actor,
                "study:label",
                Outcome.FAILURE,
                study_uid=study_uid,
                source=source,
                details={verb: label, "error": str(exc)},
            )
            raise
        self.audit.record(
            actor,
            "study:label",
            Outcome.SUCCESS,
            study_uid=study_uid,
            patient_id=patient_id,
            source=source,
            details={verb: label, "changed": changed},
        )
        return label
