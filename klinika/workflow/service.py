"""The :class:`Schedule`: scheduled procedure steps (create, update, cancel, get, search),
the modality worklist's matching, performed procedure steps (MPPS) and storage commitment.

Every door calls it: ``/api/worklist``, the console's schedule page, the DIMSE SCPs (worklist
C-FIND, MPPS N-CREATE/N-SET, storage commitment N-ACTION) and order interfaces (HL7, FHIR).
Each call that reads or changes patient data writes one audit event with the patient id.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.db import Database
from klinika.errors import KlinikaError
from klinika.index import schema as index
from klinika.index.matching import MatchColumn, match_terms, normalize_name
from klinika.workflow import performed
from klinika.workflow.errors import InvalidStep, StepStateError, UnknownStep
from klinika.workflow.records import (
    DESK_STATES,
    PerformedStep,
    ScheduledStep,
    StepDetails,
    StepStatus,
)
from klinika.workflow.schema import performed_steps, scheduled_steps

_S = scheduled_steps.c
#: Worklist match keys (PS3.4 K.6.1.2) and the columns that hold them: top-level keys and
#: those of the Scheduled Procedure Step Sequence item, matched by the index's rules.
WORKLIST_COLUMNS: dict[str, MatchColumn] = {
    m.keyword: m
    for m in (
        MatchColumn("PatientID", _S.patient_id),
        MatchColumn("PatientName", _S.patient_name, _S.patient_name_norm),
        MatchColumn("PatientBirthDate", _S.patient_birth_date),
        MatchColumn("PatientSex", _S.patient_sex),
        MatchColumn("AccessionNumber", _S.accession_number),
        MatchColumn("RequestedProcedureID", _S.requested_procedure_id),
        MatchColumn("RequestedProcedureDescription", _S.requested_procedure_description),
        MatchColumn("ReferringPhysicianName", _S.referring_physician, _S.referring_physician_norm),
        MatchColumn("StudyInstanceUID", _S.study_instance_uid),
        MatchColumn("Modality", _S.modality),
        MatchColumn("ScheduledStationAETitle", _S.station_ae_title),
        MatchColumn("ScheduledProcedureStepStartDate", _S.start_date),
        MatchColumn("ScheduledProcedureStepStartTime", _S.start_time),
        MatchColumn(
            "ScheduledPerformingPhysicianName",
            _S.performing_physician,
            _S.performing_physician_norm,
        ),
        MatchColumn("ScheduledProcedureStepID", _S.step_id),
        MatchColumn("ScheduledProcedureStepDescription", _S.step_description),
        MatchColumn("ScheduledProcedureStepStatus", _S.status),
    )
}
#: What a worklist query returns when it does not ask for a status: what is still to do.
OPEN_STATES = (StepStatus.SCHEDULED, StepStatus.ARRIVED, StepStatus.IN_PROGRESS)
_NAMES = {"patient_name", "performing_physician", "referring_physician"}


@dataclass(frozen=True)
class StepFilter:
    """A front desk's view: a date range (``YYYYMMDD``, inclusive), and optional modality,
    station, status, patient (id or name, PN matching), exact patient id and accession
    number (what an order interface looks a step up by)."""

    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    station_ae_title: str = ""
    status: str = ""
    patient: str = ""
    patient_id: str = ""
    accession_number: str = ""
    limit: int = 500


class FailureReason(StrEnum):
    """Why an instance of a storage commitment request is not committed (PS3.4 J.3.3.1.1.2)."""

    NO_SUCH_INSTANCE = "no-such-instance"
    CLASS_INSTANCE_CONFLICT = "class-instance-conflict"


@dataclass(frozen=True)
class CommitmentResult:
    """Which of the requested (SOP Class UID, SOP Instance UID) pairs we hold, and why the
    others are not committed."""

    transaction_uid: str
    committed: tuple[tuple[str, str], ...]
    failed: tuple[tuple[str, str, FailureReason], ...]


class Schedule:
    """Scheduled and performed procedure steps of one installation.

    Parameters
    ----------
    database, audit
        Where steps are kept (the index's database) and where events go.
    clock
        Unix seconds now (tests pass their own).
    """

    def __init__(
        self, database: Database, audit: AuditTrail, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.audit = audit
        self.clock = clock

    # ------------------------------------------------------------------ the front desk
    def create(
        self, details: StepDetails, actor: Actor, *, source: str | None = None
    ) -> ScheduledStep:
        """Schedule one step; a Study Instance UID is generated for the study it will make,
        and the accession number, requested procedure id and step id when left empty.

        Raises
        ------
        InvalidStep
            A field is missing or malformed.
        StepStateError
            The step id or the accession number is taken.
        """
        with self._audited(actor, "workflow:schedule", source) as record:
            details = details.checked()
            now = int(self.clock())
            accession = details.accession_number or _generated_number()
            details = StepDetails(
                **{
                    **asdict(details),
                    "accession_number": accession,
                    "requested_procedure_id": details.requested_procedure_id or accession,
                    "step_id": details.step_id or _generated_number(),
                }
            )
            study_uid = generate_uid()
            record.update(patient_id=details.patient_id, study_uid=study_uid)
            record["details"] = {"step_id": details.step_id, "accession": accession}
            with self.database.writer.begin() as connection:
                self._check_unique(connection, details, None)
                connection.execute(
                    sa.insert(scheduled_steps).values(
                        _row(details)
                        | {
                            "status": StepStatus.SCHEDULED.value,
                            "study_instance_uid": study_uid,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                )
            return self._get(details.step_id)

    def update(
        self,
        step_id: str,
        details: StepDetails,
        actor: Actor,
        *,
        status: StepStatus | None = None,
        source: str | None = None,
    ) -> ScheduledStep:
        """Change a step's details (and its status between SCHEDULED and ARRIVED). The step
        id and Study Instance UID stay.

        Raises
        ------
        UnknownStep, InvalidStep
            As :meth:`get` and :meth:`create`.
        StepStateError
            The step is in progress, completed or discontinued, or the accession is taken.
        """
        with self._audited(actor, "workflow:schedule", source) as record:
            current = self._get(step_id)
            record.update(patient_id=current.patient_id, study_uid=current.study_instance_uid)
            record["details"] = {"step_id": step_id, "change": "update"}
            if current.status not in DESK_STATES:
                raise StepStateError(f"step {step_id} is {current.status.value}: it cannot change")
            if status is not None and status not in DESK_STATES:
                raise InvalidStep("the front desk sets SCHEDULED or ARRIVED only")
            details = StepDetails(**{**asdict(details), "step_id": step_id}).checked()
            details = StepDetails(
                **{
                    **asdict(details),
                    "accession_number": details.accession_number
                    or current.details.accession_number,
                    "requested_procedure_id": details.requested_procedure_id
                    or current.details.requested_procedure_id,
                }
            )
            with self.database.writer.begin() as connection:
                self._check_unique(connection, details, step_id)
                changed = connection.execute(
                    sa.update(scheduled_steps)
                    .where(_S.step_id == step_id, _S.status.in_([s.value for s in DESK_STATES]))
                    .values(
                        _row(details)
                        | {
                            "status": (status or current.status).value,
                            "updated_at": int(self.clock()),
                        }
                    )
                ).rowcount
                if not changed:
                    raise StepStateError(f"step {step_id} changed meanwhile")
            return self._get(step_id)

    def cancel(self, step_id: str, actor: Actor, *, source: str | None = None) -> ScheduledStep:
        """Discontinue a step that was not performed yet (it leaves the worklist).

        Raises
        ------
        UnknownStep
            No such step.
        StepStateError
            The step is in progress, completed or already discontinued.
        """
        with self._audited(actor, "workflow:schedule", source) as record:
            current = self._get(step_id)
            record.update(patient_id=current.patient_id, study_uid=current.study_instance_uid)
            record["details"] = {"step_id": step_id, "change": "cancel"}
            if current.status not in DESK_STATES:
                raise StepStateError(
                    f"step {step_id} is {current.status.value}: it cannot be cancelled"
                )
            with self.database.writer.begin() as connection:
                connection.execute(
                    sa.update(scheduled_steps)
                    .where(_S.step_id == step_id)
                    .values(status=StepStatus.DISCONTINUED.value, updated_at=int(self.clock()))
                )
            return self._get(step_id)

    def get(self, step_id: str, actor: Actor, *, source: str | None = None) -> ScheduledStep:
        """One step, by its step id.

        Raises
        ------
        UnknownStep
            No such step.
        """
        with self._audited(actor, "workflow:read", source) as record:
            record["details"] = {"step_id": step_id}
            step = self._get(step_id)
            record.update(patient_id=step.patient_id, study_uid=step.study_instance_uid)
            return step

    def search(
        self, wanted: StepFilter, actor: Actor, *, source: str | None = None
    ) -> list[ScheduledStep]:
        """Steps of a date range, earliest first (and the other filters of ``wanted``)."""
        match: dict[str, str] = {}
        if wanted.date_from or wanted.date_to:
            low = wanted.date_from.replace("-", "")
            high = wanted.date_to.replace("-", "")
            match["ScheduledProcedureStepStartDate"] = low if low == high else f"{low}-{high}"
        if wanted.modality:
            match["Modality"] = wanted.modality.upper()
        if wanted.station_ae_title:
            match["ScheduledStationAETitle"] = wanted.station_ae_title
        if wanted.status:
            match["ScheduledProcedureStepStatus"] = wanted.status
        if wanted.patient_id:
            match["PatientID"] = wanted.patient_id
        if wanted.accession_number:
            match["AccessionNumber"] = wanted.accession_number
        terms = match_terms(WORKLIST_COLUMNS, match)
        if wanted.patient:
            name = WORKLIST_COLUMNS["PatientName"]
            text = wanted.patient.strip()
            pattern = text if "*" in text or "?" in text else f"*{text}*"
            terms.append(
                sa.or_(
                    _S.patient_id == text,
                    *[t for t in match_terms({"PatientName": name}, {"PatientName": pattern})],
                )
            )
        with self._audited(actor, "workflow:read", source) as record:
            steps = self._select(terms, limit=wanted.limit)
            record["details"] = {"filter": asdict(wanted), "steps": len(steps)}
            patients = {s.patient_id for s in steps}
            if len(patients) == 1:
                record["patient_id"] = patients.pop()
            return steps

    # ------------------------------------------------------------------ the modality worklist
    def worklist(
        self, match: Mapping[str, str], actor: Actor, *, source: str | None = None
    ) -> list[ScheduledStep]:
        """The steps a Modality Worklist query matches (PS3.4 K.6.1.2: ``match`` holds the
        top-level keys and those of the Scheduled Procedure Step Sequence item, keyword ->
        value as text). Without a status key, only steps still to do (SCHEDULED, ARRIVED,
        IN PROGRESS) are returned.

        Raises
        ------
        InvalidQuery
            A key's value is malformed for its VR.
        """
        with self._audited(actor, "workflow:read", source) as record:
            record["details"] = {"service": "worklist", "keys": sorted(match)}
            terms = match_terms(WORKLIST_COLUMNS, match)
            if match.get("ScheduledProcedureStepStatus", "").strip() in ("", "*"):
                terms.append(_S.status.in_([s.value for s in OPEN_STATES]))
            steps = self._select(terms, limit=None)
            record["details"]["matches"] = len(steps)
            patients = {s.patient_id for s in steps}
            if len(patients) == 1:
                record["patient_id"] = patients.pop()
            return steps

    # ------------------------------------------------------------------ MPPS
    def start_performed(
        self,
        sop_instance_uid: str | None,
        attributes: Dataset,
        actor: Actor,
        *,
        source: str | None = None,
    ) -> PerformedStep:
        """An MPPS N-CREATE: a performed step IN PROGRESS, linked to the scheduled step its
        Scheduled Step Attributes Sequence names (step id, else Study Instance UID, else
        accession), which becomes IN PROGRESS too.

        Raises
        ------
        InvalidAttribute
            A required attribute is missing or a value is not allowed (the status must be
            IN PROGRESS).
        DuplicatePerformedStep
            The SOP Instance UID exists already.

        References
        ----------
        PS3.4 F.7.2.1 (N-CREATE), PS3.3 C.4.13-C.4.16 (MPPS modules).
        """
        with self._audited(actor, "workflow:perform", source) as record:
            uid = sop_instance_uid or generate_uid()
            record["sop_instance_uid"] = uid
            record["details"] = {"service": "MPPS N-CREATE"}
            now = int(self.clock())
            with self.database.writer.begin() as connection:
                found = performed.create(connection, uid, attributes, now)
                record.update(patient_id=found.patient_id, study_uid=found.step.study_instance_uid)
                record["details"]["status"] = found.step.status
                return found.step

    def update_performed(
        self,
        sop_instance_uid: str,
        modifications: Dataset,
        actor: Actor,
        *,
        source: str | None = None,
    ) -> PerformedStep:
        """An MPPS N-SET: its attributes replaced by ``modifications``, all or nothing; a
        final status (COMPLETED, DISCONTINUED) is passed on to the scheduled step.

        Raises
        ------
        UnknownPerformedStep
            No such MPPS instance.
        PerformedStepFinal
            It is COMPLETED or DISCONTINUED already.
        InvalidAttribute
            A value is not allowed (nothing is changed).

        References
        ----------
        PS3.4 F.7.2.2 (N-SET), F.7.2.2.4.2 (no update after a final state).
        """
        with self._audited(actor, "workflow:perform", source) as record:
            record["sop_instance_uid"] = sop_instance_uid
            record["details"] = {"service": "MPPS N-SET"}
            with self.database.writer.begin() as connection:
                found = performed.update(
                    connection, sop_instance_uid, modifications, int(self.clock())
                )
                record.update(patient_id=found.patient_id, study_uid=found.step.study_instance_uid)
                record["details"]["status"] = found.step.status
                return found.step

    # ------------------------------------------------------------------ storage commitment
    def commitment(
        self,
        transaction_uid: str,
        references: Iterable[tuple[str, str]],
        actor: Actor,
        *,
        source: str | None = None,
    ) -> CommitmentResult:
        """Which requested instances (SOP Class UID, SOP Instance UID) we hold: an index row
        exists only once its blob is durable and the index transaction committed, so being
        in the index is being safely stored. A held instance of another SOP class is a
        class/instance conflict.

        References
        ----------
        PS3.4 J.3.3.1 (Storage Commitment Push Model: N-ACTION and N-EVENT-REPORT).
        """
        wanted = list(references)
        with self._audited(actor, "workflow:perform", source) as record:
            record["details"] = {"service": "storage commitment", "transaction": transaction_uid}
            held: dict[str, tuple[str, str]] = {}
            uids = sorted({uid for _, uid in wanted})
            studies: set[str] = set()
            with self.database.reader.connect() as connection:
                for start in range(0, len(uids), 500):
                    rows = connection.execute(
                        sa.select(
                            index.instances.c.sop_instance_uid,
                            index.instances.c.sop_class_uid,
                            index.studies.c.study_instance_uid,
                        )
                        .select_from(
                            index.instances.join(
                                index.series, index.instances.c.series_pk == index.series.c.pk
                            ).join(index.studies, index.series.c.study_pk == index.studies.c.pk)
                        )
                        .where(index.instances.c.sop_instance_uid.in_(uids[start : start + 500]))
                    ).all()
                    held.update({r[0]: (r[1], r[2]) for r in rows})
            committed: list[tuple[str, str]] = []
            failed: list[tuple[str, str, FailureReason]] = []
            for sop_class, uid in wanted:
                if uid not in held:
                    failed.append((sop_class, uid, FailureReason.NO_SUCH_INSTANCE))
                elif held[uid][0] != sop_class:
                    failed.append((sop_class, uid, FailureReason.CLASS_INSTANCE_CONFLICT))
                else:
                    committed.append((sop_class, uid))
                    studies.add(held[uid][1])
            if len(studies) == 1:
                record["study_uid"] = next(iter(studies))
            record["details"].update(committed=len(committed), failed=len(failed))
            return CommitmentResult(transaction_uid, tuple(committed), tuple(failed))

    # ------------------------------------------------------------------ internals
    @contextmanager
    def _audited(self, actor: Actor, action: str, source: str | None) -> Iterator[dict[str, Any]]:
        """One audit event for the block: success, or failure with the error; the block
        fills ``patient_id``, ``study_uid``, ``sop_instance_uid`` and ``details``."""
        record: dict[str, Any] = {"details": {}}
        try:
            yield record
        except KlinikaError as exc:
            record["details"] = {**record["details"], "error": str(exc)}
            self.audit.record(actor, action, Outcome.FAILURE, source=source, **record)
            raise
        writes = action != "workflow:read"
        if writes:
            self.audit.record(actor, action, Outcome.SUCCESS, source=source, **record)
        else:
            self.audit.record_soon(actor, action, Outcome.SUCCESS, source=source, **record)

    def _check_unique(
        self, connection: sa.Connection, details: StepDetails, own: str | None
    ) -> None:
        taken = connection.execute(
            sa.select(_S.step_id, _S.accession_number).where(
                sa.or_(
                    _S.step_id == details.step_id,
                    _S.accession_number == details.accession_number,
                ),
                *([_S.step_id != own] if own else []),
            )
        ).first()
        if taken is not None:
            what = "step id" if taken.step_id == details.step_id else "accession number"
            raise StepStateError(f"the {what} is taken by step {taken.step_id}")

    def _get(self, step_id: str) -> ScheduledStep:
        found = self._select([_S.step_id == step_id], limit=1)
        if not found:
            raise UnknownStep(f"no scheduled step {step_id!r}")
        return found[0]

    def _select(self, terms: list[Any], *, limit: int | None) -> list[ScheduledStep]:
        statement = (
            sa.select(scheduled_steps, *[c.label(f"mpps_{c.name}") for c in performed_steps.c])
            .select_from(
                scheduled_steps.outerjoin(
                    performed_steps, performed_steps.c.sop_instance_uid == _S.performed_uid
                )
            )
            .where(*terms)
            .order_by(_S.start_date, _S.start_time, _S.pk)
        )
        if limit is not None:
            statement = statement.limit(limit)
        with self.database.reader.connect() as connection:
            rows = connection.execute(statement).all()
            wanted = {r.study_instance_uid for r in rows} | {
                r.mpps_study_instance_uid for r in rows if r.mpps_study_instance_uid
            }
            accessions = {r.accession_number for r in rows if r.accession_number}
            stored: set[str] = set()
            by_order: dict[tuple[str, str], list[str]] = {}
            if wanted:
                studies, patients = index.studies, index.patients
                found = connection.execute(
                    sa.select(
                        studies.c.study_instance_uid,
                        studies.c.accession_number,
                        patients.c.patient_id,
                    )
                    .join(patients, studies.c.patient_pk == patients.c.pk)
                    .where(
                        sa.or_(
                            studies.c.study_instance_uid.in_(sorted(wanted)),
                            studies.c.accession_number.in_(sorted(accessions)),
                        )
                    )
                ).all()
                for uid, accession, patient_id in found:
                    stored.add(uid)
                    if accession:
                        by_order.setdefault((accession, patient_id or ""), []).append(uid)
        return [_step(row, stored, by_order) for row in rows]


def _generated_number() -> str:
    """A 16-digit number for an accession or a step id (SH: 16 characters at most)."""
    return str(secrets.randbelow(9 * 10**15) + 10**15)


def _row(details: StepDetails) -> dict[str, Any]:
    values: dict[str, Any] = {k: (v or None) for k, v in asdict(details).items()}
    for key in _NAMES:
        values[f"{key}_norm"] = normalize_name(values[key]) if values[key] else None
    values["patient_name_norm"] = normalize_name(details.patient_name)
    for key in ("patient_id", "patient_name", "accession_number", "requested_procedure_id"):
        values[key] = values[key] or ""
    values["modality"] = details.modality
    values["start_date"], values["start_time"] = details.start_date, details.start_time
    return values


def _step(
    row: sa.Row[Any], stored: set[str], by_order: dict[tuple[str, str], list[str]]
) -> ScheduledStep:
    """A step from its row; its study is the stored one with its Study Instance UID, else
    the one its MPPS names, else the one study of its patient with its accession number (a
    modality that made a UID of its own)."""
    m = row._mapping
    details = StepDetails(**{k: m[k] or "" for k in StepDetails.__dataclass_fields__})
    mpps = None
    if m["mpps_sop_instance_uid"]:
        mpps = PerformedStep(
            sop_instance_uid=m["mpps_sop_instance_uid"],
            status=m["mpps_status"],
            study_instance_uid=m["mpps_study_instance_uid"],
            station_ae_title=m["mpps_station_ae_title"],
            created_at=m["mpps_created_at"],
            updated_at=m["mpps_updated_at"],
        )
    candidates = [m["study_instance_uid"], mpps.study_instance_uid if mpps else None]
    stored_uid = next((uid for uid in candidates if uid and uid in stored), None)
    same_order = by_order.get((m["accession_number"], m["patient_id"]), [])
    if stored_uid is None and len(same_order) == 1:
        stored_uid = same_order[0]
    return ScheduledStep(
        details=details,
        status=StepStatus(m["status"]),
        study_instance_uid=m["study_instance_uid"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        performed=mpps,
        stored_study_uid=stored_uid,
    )
