"""Study management for admins: edit patient and study attributes, merge patients or studies,
split a series out into a new study, delete a series.

Each operation rewrites the stored Part-10 files (same SOP Instance UIDs; the Study Instance
UID changes where a series moves) and puts them in place through the archive's one write
path (:meth:`Archive.replace_instances`: blob put, one index transaction, old blobs removed
after it), so DICOMweb and DIMSE see the change at once. The one-patient-per-study rule holds
after each: every instance of a study concerned is rewritten with the same patient.

Each operation is ONE audit event (``patient:update``, ``patient:merge``, ``study:update``,
``study:merge``, ``series:split``, ``series:delete``) naming the patient ids before and after,
the studies and series and what changed; a refused operation is one ``failure`` event.

Edges authorize first (``study:manage``); this room records the :class:`Actor` it is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from klinika.archive.records import InstanceRecord
from klinika.archive.service import Archive
from klinika.audit import Actor, AuditEvent, AuditTrail, Outcome
from klinika.dicom.edit import (
    PATIENT_IDENTITY,
    PATIENT_KEYWORDS,
    STUDY_IDENTITY,
    STUDY_KEYWORDS,
    rewrite,
    validated,
    values_of,
)
from klinika.errors import Conflict, InvalidChange, KlinikaError, NotFound
from klinika.index import lookups

#: ``guard(study_uid)``: why the study may not be merged away (e.g. it has a report), or None.
MergeGuard = Callable[[str], str | None]


@dataclass(frozen=True)
class PatientKey:
    """A patient as the index knows it: Patient ID and issuer ("" when none)."""

    patient_id: str
    issuer: str = ""


@dataclass
class ManagementResult:
    """What one operation changed (also the ``details`` of its audit event)."""

    action: str
    instances: int = 0
    patients_before: list[str] = field(default_factory=list)
    patients_after: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    changes: dict[str, str | None] = field(default_factory=dict)
    new_study_uid: str | None = None
    renamed: bool = False  # a patient merge into an absent patient: a change of Patient ID
    event_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "instances": self.instances,
            "patients_before": self.patients_before,
            "patients_after": self.patients_after,
            "studies": self.studies,
            "series": self.series,
            "changes": self.changes,
            "new_study_uid": self.new_study_uid,
            "renamed": self.renamed,
            "event_seq": self.event_seq,
        }


class StudyManagement:
    """The admin operations on what the archive holds.

    Parameters
    ----------
    archive, audit
        Where the instances live and where each operation is recorded.
    merge_guards
        Asked before a study is merged into another; a reason refuses the merge (the report
        service refuses while the source study has a report: a report is about one study).
    """

    def __init__(
        self, archive: Archive, audit: AuditTrail, *, merge_guards: Sequence[MergeGuard] = ()
    ) -> None:
        self.archive = archive
        self.audit = audit
        self.merge_guards = list(merge_guards)

    # ----------------------------------------------------------------- patients
    def update_patient(
        self,
        patient_id: str,
        changes: Mapping[str, Any],
        *,
        actor: Actor,
        issuer: str | None = None,
        source: str | None = None,
    ) -> ManagementResult:
        """Change patient attributes (name, ID, issuer, birth date, sex, other IDs) in every
        instance of the patient's studies. A new Patient ID that another patient holds is
        refused (that is :meth:`merge_patients`)."""
        result = ManagementResult("patient:update", patients_before=[patient_id])
        with self._recorded(result, actor, source):
            wanted = _something(validated(changes, PATIENT_KEYWORDS))
            result.changes = wanted
            key = self._patient(patient_id, issuer)
            after = PatientKey(
                wanted.get("PatientID", key.patient_id) or key.patient_id,
                (wanted["IssuerOfPatientID"] or "")
                if "IssuerOfPatientID" in wanted
                else key.issuer,
            )
            if after != key and self._patient_exists(after):
                raise Conflict(
                    f"patient {after.patient_id} exists already; merge the two patients instead"
                )
            studies = self._studies_of(key)
            result.studies, result.patients_after = studies, [after.patient_id]
            result.instances = self._replace(
                [r for study in studies for r in self.archive.instances(study)], lambda _: wanted
            )
        return result

    def merge_patients(
        self,
        source_patient_id: str,
        target_patient_id: str,
        *,
        actor: Actor,
        source_issuer: str | None = None,
        target_issuer: str | None = None,
        source: str | None = None,
        rename_if_absent: bool = False,
    ) -> ManagementResult:
        """Make every study of the source patient a study of the target: their instances take
        the target's patient attributes; the source patient is gone afterwards.

        With ``rename_if_absent`` (HL7 ADT^A40 naming a target the archive does not hold), an
        unknown target makes this a change of the source's Patient ID (and issuer) instead
        of a refusal; the event says ``renamed``."""
        result = ManagementResult(
            "patient:merge",
            patients_before=[source_patient_id, target_patient_id],
            patients_after=[target_patient_id],
        )
        with self._recorded(result, actor, source):
            moving = self._patient(source_patient_id, source_issuer)
            try:
                staying = self._patient(target_patient_id, target_issuer)
            except NotFound:
                if not rename_if_absent:
                    raise
                staying = None
            if moving == staying:
                raise InvalidChange("a patient cannot be merged into itself")
            studies = self._studies_of(moving)
            if staying is None:
                identity = validated(
                    {"PatientID": target_patient_id, "IssuerOfPatientID": target_issuer},
                    PATIENT_KEYWORDS,
                )
                result.renamed = True
            else:
                identity = values_of(self._sample(self._studies_of(staying)[0]), PATIENT_IDENTITY)
            result.studies, result.changes = studies, identity
            result.instances = self._replace(
                [r for study in studies for r in self.archive.instances(study)],
                lambda _: identity,
            )
        return result

    # ------------------------------------------------------------------ studies
    def update_study(
        self,
        study_uid: str,
        changes: Mapping[str, Any],
        *,
        actor: Actor,
        source: str | None = None,
    ) -> ManagementResult:
        """Change study attributes (description, accession number, referring physician,
        study date and time, study ID) in every instance of the study."""
        result = ManagementResult("study:update", studies=[study_uid])
        with self._recorded(result, actor, source):
            wanted = _something(validated(changes, STUDY_KEYWORDS))
            result.changes = wanted
            records = self.archive.instances(study_uid)
            result.patients_before = result.patients_after = self._patients_of([study_uid])
            result.instances = self._replace(records, lambda _: wanted)
        return result

    def merge_studies(
        self,
        source_study_uid: str,
        target_study_uid: str,
        *,
        actor: Actor,
        source: str | None = None,
    ) -> ManagementResult:
        """Move every series of the source study into the target study (same patient only);
        the moved instances take the target's study and patient attributes, and the source
        study is gone afterwards. Refused while a merge guard objects (a report)."""
        result = ManagementResult("study:merge", studies=[source_study_uid, target_study_uid])
        with self._recorded(result, actor, source):
            if source_study_uid == target_study_uid:
                raise InvalidChange("a study cannot be merged into itself")
            records = self.archive.instances(source_study_uid)
            self.archive.instances(target_study_uid)  # NotFound before anything else
            result.patients_before = self._patients_of([source_study_uid, target_study_uid])
            if len(set(result.patients_before)) > 1:
                raise Conflict(
                    "the studies belong to different patients; merge the patients first or "
                    "split the series into the other patient's study"
                )
            result.patients_after = result.patients_before[:1]
            for guard in self.merge_guards:
                reason = guard(source_study_uid)
                if reason:
                    raise Conflict(reason)
            target = self._sample(target_study_uid)
            identity = values_of(target, STUDY_IDENTITY + PATIENT_IDENTITY)
            result.series = sorted({r.series_uid for r in records})
            result.instances = self._replace(records, lambda _: identity)
        return result

    # ------------------------------------------------------------------- series
    def split_series(
        self,
        study_uid: str,
        series_uids: Sequence[str],
        *,
        actor: Actor,
        target_patient_id: str | None = None,
        target_issuer: str | None = None,
        study_changes: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> ManagementResult:
        """Move series out of a study into a new study (a new Study Instance UID, the study
        attributes of the old one unless ``study_changes`` says otherwise), of the same
        patient or of ``target_patient_id``. Returns the new study's UID in the result."""
        series_uids = list(dict.fromkeys(series_uids))
        result = ManagementResult("series:split", studies=[study_uid], series=series_uids)
        with self._recorded(result, actor, source):
            if not series_uids:
                raise InvalidChange("name at least one series to split out")
            wanted = validated(study_changes or {}, STUDY_KEYWORDS)
            records = [r for s in series_uids for r in self.archive.instances(study_uid, s)]
            result.patients_before = self._patients_of([study_uid])
            new_study = generate_uid()
            changes: dict[str, str | None] = {
                **values_of(self._sample(study_uid), STUDY_KEYWORDS),
                **wanted,
                "StudyInstanceUID": new_study,
            }
            if target_patient_id is not None:
                key = self._patient(target_patient_id, target_issuer)
                changes |= values_of(self._sample(self._studies_of(key)[0]), PATIENT_IDENTITY)
                result.patients_after = [key.patient_id]
            else:
                result.patients_after = result.patients_before
            result.changes, result.new_study_uid = changes, new_study
            result.studies.append(new_study)
            result.instances = self._replace(records, lambda _: changes)
        return result

    def delete_series(
        self, study_uid: str, series_uid: str, *, actor: Actor, source: str | None = None
    ) -> ManagementResult:
        """Remove a series (index first, then its blobs: :meth:`Archive.delete`)."""
        result = ManagementResult("series:delete", studies=[study_uid], series=[series_uid])
        with self._recorded(result, actor, source):
            self.archive.instances(study_uid, series_uid)
            result.patients_before = self._patients_of([study_uid])
            result.instances = self.archive.delete(study_uid, series_uid)
            result.patients_after = result.patients_before
        return result

    def attributes(self, study_uid: str) -> dict[str, str | None]:
        """The patient and study attributes an admin may change, as the study holds them
        (for the console's forms; not audited here, the page's access is)."""
        return values_of(self._sample(study_uid), PATIENT_KEYWORDS + STUDY_KEYWORDS)

    # ----------------------------------------------------------------- helpers
    def _replace(
        self,
        records: list[InstanceRecord],
        changes_for: Callable[[InstanceRecord], Mapping[str, str | None]],
    ) -> int:
        """Rewrite the instances and put them in place in one index transaction (the blobs
        are rewritten and written in batches first, so memory holds a batch at a time)."""
        if not records:
            return 0
        return self.archive.replace_instances(
            (record, rewrite(self.archive.read(record), changes_for(record))) for record in records
        )

    @contextmanager
    def _recorded(
        self, result: ManagementResult, actor: Actor, source: str | None
    ) -> Iterator[None]:
        """One audit event for the operation: success with what changed, or the failure."""
        try:
            yield
        except KlinikaError as exc:
            self._record(result, actor, source, Outcome.FAILURE, error=str(exc))
            raise
        self.audit.forget_studies(result.studies)
        event = self._record(result, actor, source, Outcome.SUCCESS)
        result.event_seq = event.seq

    def _record(
        self,
        result: ManagementResult,
        actor: Actor,
        source: str | None,
        outcome: Outcome,
        **extra: Any,
    ) -> AuditEvent:
        details = result.as_dict() | extra
        details.pop("event_seq")
        patients = result.patients_after or result.patients_before
        patient = patients[0] if patients else None
        return self.audit.record(
            actor,
            result.action,
            outcome,
            study_uid=result.studies[0] if result.studies else None,
            series_uid=result.series[0] if len(result.series) == 1 else None,
            patient_id=patient,
            source=source,
            details=details,
        )

    def _patient(self, patient_id: str, issuer: str | None) -> PatientKey:
        with self.archive.database.reader.connect() as connection:
            keys = lookups.patient_keys(connection, patient_id, issuer)
        if not keys:
            raise NotFound(f"patient {patient_id} is not in the archive")
        if len(keys) > 1:
            raise Conflict(f"patient ID {patient_id} is held under several issuers; name one")
        return PatientKey(*keys[0])

    def _patient_exists(self, key: PatientKey) -> bool:
        try:
            return self._patient(key.patient_id, key.issuer) is not None
        except NotFound:
            return False

    def _studies_of(self, key: PatientKey) -> list[str]:
        with self.archive.database.reader.connect() as connection:
            found = lookups.patient_studies(connection, key.patient_id, key.issuer)
        if not found:
            raise NotFound(f"patient {key.patient_id} has no study")
        return found

    def _patients_of(self, study_uids: list[str]) -> list[str]:
        return [self.archive.patient_of(uid) or "" for uid in study_uids]

    def _sample(self, study_uid: str) -> Dataset:
        """The header of one instance of the study, from its stored DICOM JSON (the patient
        and study attributes its instances share)."""
        record = self.archive.instances(study_uid)[0]
        document = json.loads(record.metadata_json)
        keep = {
            tag: value
            for tag, value in document.items()
            if "BulkDataURI" not in value and "InlineBinary" not in value
        }
        return Dataset.from_json(keep)


def _something(changes: dict[str, str | None]) -> dict[str, str | None]:
    if not changes:
        raise InvalidChange("nothing to change")
    return changes
