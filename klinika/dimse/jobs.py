"""Send to… and Query/Retrieve as background jobs, kept in the index.

A job is a row of ``dimse_jobs`` (:mod:`klinika.dimse.schema`) run by a daemon thread of the
process that created it (at most :data:`CONCURRENT_JOBS` at once per process): it updates its
progress (n of m) as it goes and ends ``done`` or ``failed`` with counts and a message. A
server that stops while a job runs leaves it ``running``; the next ``klinika serve`` marks
such jobs ``interrupted`` (:meth:`Jobs.mark_interrupted`) so the jobs page tells what
happened.

Sending uses :func:`klinika.dimse.scu.send_records`, the transcoding-aware sender C-MOVE uses;
retrieving is a C-MOVE to our own AE title (what arrives goes through our C-STORE SCP) or a
C-GET whose instances go through ``Archive.store``, per node (:attr:`DicomNode.retrieve`).
Every job is audited when it starts and when it ends (``details.phase`` ``started`` /
``finished``), with the study (and so the patient).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from klinika.archive import Archive
from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth.nodes import DicomNode, NodeRegistry
from klinika.auth.permissions import Role
from klinika.config import Settings
from klinika.db import Database
from klinika.dimse.schema import dimse_jobs
from klinika.dimse.scu import PeerError, echo, query, retrieve, retrieve_get, send_records
from klinika.dimse.tls import client_tls_context
from klinika.errors import InvalidQuery, KlinikaError, NotFound

log = logging.getLogger(__name__)

#: Jobs one process runs at the same time; the others wait their turn (state ``queued``).
CONCURRENT_JOBS = 2
#: How often a running job writes its progress to the index (seconds).
PROGRESS_SECONDS = 0.5
#: The study-level keys a remote query asks for (and shows).
STUDY_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances",
    "StudyInstanceUID",
)
#: At most this many studies are shown from a remote query.
QUERY_LIMIT = 200


class JobState(StrEnum):
    """Where a send or retrieve job stands (``dimse_jobs.state``)."""

    QUEUED = "queued"  # waiting for one of the MAX_RUNNING slots
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the server stopped while it was queued or running


#: States a job does not leave.
FINISHED_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.INTERRUPTED})


@dataclass(frozen=True)
class Job:
    """One job as the index holds it."""

    job_id: int
    kind: str
    node: str
    state: JobState
    target: dict[str, Any]
    total: int
    done: int
    failed: int
    warnings: int
    message: str
    created_by: str
    created_at: int
    finished_at: int | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "kind": self.kind,
            "node": self.node,
            "state": self.state,
            "target": self.target,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "warnings": self.warnings,
            "message": self.message,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class EchoResult:
    """A C-ECHO's outcome: ``status`` 0 is success; ``error`` when none came back."""

    ok: bool
    seconds: float
    status: int | None = None
    error: str = ""


class Jobs:
    """Jobs of one installation: start, follow, list; and the synchronous peer calls of the
    console (C-ECHO test, remote C-FIND)."""

    def __init__(
        self,
        database: Database,
        archive: Archive,
        audit: AuditTrail,
        nodes: NodeRegistry,
        settings: Settings,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.archive = archive
        self.audit = audit
        self.nodes = nodes
        self.settings = settings
        self._now = now
        self._slots = threading.BoundedSemaphore(CONCURRENT_JOBS)
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ peer calls
    def node(self, title: str) -> DicomNode:
        found = self.nodes.find(title)
        if found is None:
            raise NotFound(f"no DICOM node {title!r}")
        return found

    def _tls(self, node: DicomNode) -> ssl.SSLContext | None:
        if not node.tls:
            return None
        s = self.settings
        return client_tls_context(s.dimse_tls_ca, s.dimse_tls_cert, s.dimse_tls_key)

    def echo(self, title: str, *, actor: Actor, source: str | None = None) -> EchoResult:
        """C-ECHO a node; the round trip includes opening and releasing the association."""
        node = self.node(title)
        started = time.perf_counter()
        try:
            code = echo(self.settings, node.remote, self._tls(node))
            result = EchoResult(code == 0, time.perf_counter() - started, code)
        except (KlinikaError, OSError, ssl.SSLError) as exc:
            result = EchoResult(False, time.perf_counter() - started, error=str(exc))
        self.audit.record(
            actor,
            "dicom:echo",
            Outcome.SUCCESS if result.ok else Outcome.FAILURE,
            source=source,
            details={"node": title, "status": result.status, "error": result.error},
        )
        return result

    def query(
        self,
        title: str,
        keys: Mapping[str, str],
        *,
        actor: Actor,
        source: str | None = None,
    ) -> list[dict[str, str]]:
        """C-FIND studies on a node (``keys``: PatientName, PatientID, StudyDate,
        ModalitiesInStudy, AccessionNumber; empty ones are not sent as a condition); each
        answer as keyword -> text. Raises :class:`PeerError` when the node refuses."""
        node = self.node(title)
        identifier = {keyword: "" for keyword in STUDY_KEYS}
        for keyword, value in keys.items():
            if keyword not in STUDY_KEYS:
                raise InvalidQuery(f"{keyword} is not a study-level key")
            identifier[keyword] = value.strip()
        # ask for answers in UTF-8 (PS3.4 C.2.2.2.1.1: the identifier's character set), so
        # Cyrillic or Greek names come back readable whatever the node's default repertoire
        identifier = {"SpecificCharacterSet": "ISO_IR 192", **identifier}
        found = query(
            self.settings, node.remote, "STUDY", identifier, tls=self._tls(node), limit=QUERY_LIMIT
        )
        answers = [
            {keyword: _text(match.get(keyword, "")) for keyword in STUDY_KEYS} for match in found
        ]
        self.audit.record(
            actor,
            "dicom:query",
            Outcome.SUCCESS,
            source=source,
            details={
                "node": title,
                "keys": {k: v for k, v in keys.items() if v},
                "studies": len(answers),
                "patients": sorted({a["PatientID"] for a in answers if a["PatientID"]})[:50],
            },
        )
        return answers

    # ------------------------------------------------------------------ jobs
    def send(
        self,
        title: str,
        study_uid: str,
        series_uids: Sequence[str] = (),
        *,
        actor: Actor,
        source: str | None = None,
    ) -> Job:
        """Start sending a study (or some of its series) to a node."""
        node = self.node(title)
        records = [
            r
            for r in self.archive.instances(study_uid)
            if not series_uids or r.series_uid in series_uids
        ]
        if not records:
            raise NotFound(f"nothing stored for study {study_uid}")
        target = {"study_uid": study_uid, "series_uids": list(series_uids)}
        job = self._create("send", node, target, actor, total=len(records))
        self.audit.record(
            actor,
            "dicom:send",
            Outcome.SUCCESS,
            study_uid=study_uid,
            source=source,
            details={
                "phase": "started",
                "node": title,
                "job": job.job_id,
                "series": list(series_uids),
            },
        )

        def run(progress: Callable[[int, int], None]) -> tuple[int, int, int, str]:
            result = send_records(
                self.settings, self.archive, records, node.remote, self._tls(node), progress
            )
            failures = "; ".join(f"{uid}: 0x{code:04X}" for uid, code in result.failed[:5])
            return result.sent, len(result.failed), result.warnings, failures

        self._start(job, run, actor, "dicom:send", study_uid, source)
        return job

    def retrieve(
        self,
        title: str,
        study_uids: Iterable[str],
        *,
        patient_ids: Mapping[str, str] | None = None,
        actor: Actor,
        source: str | None = None,
    ) -> list[Job]:
        """Start retrieving studies from a node into Klinika, one job per study (C-MOVE to our
        AE title, or C-GET when the node's ``retrieve`` says so)."""
        node = self.node(title)
        jobs = []
        for study_uid in dict.fromkeys(u.strip() for u in study_uids if u.strip()):
            patient_id = (patient_ids or {}).get(study_uid)
            target = {"study_uid": study_uid, "method": node.retrieve, "patient_id": patient_id}
            job = self._create("retrieve", node, target, actor)
            self.audit.record(
                actor,
                "dicom:retrieve",
                Outcome.SUCCESS,
                study_uid=study_uid,
                patient_id=patient_id,
                source=source,
                details={
                    "phase": "started",
                    "node": title,
                    "job": job.job_id,
                    "method": node.retrieve,
                },
            )
            self._start(
                job, self._retriever(node, study_uid), actor, "dicom:retrieve", study_uid, source
            )
            jobs.append(job)
        return jobs

    def _retriever(
        self, node: DicomNode, study_uid: str
    ) -> Callable[[Callable[[int, int], None]], tuple[int, int, int, str]]:
        def run(progress: Callable[[int, int], None]) -> tuple[int, int, int, str]:
            tls = self._tls(node)
            if node.retrieve == "get":
                result = retrieve_get(
                    self.settings,
                    node.remote,
                    study_uid,
                    lambda part10: self._store_received(node, part10),
                    self._sop_classes(node, study_uid, tls),
                    tls,
                    progress,
                )
            else:
                result = retrieve(self.settings, node.remote, study_uid, tls, progress)
            return result.completed, result.failed, result.warnings, ""

        return run

    def _sop_classes(
        self, node: DicomNode, study_uid: str, tls: ssl.SSLContext | None
    ) -> list[str]:
        """The SOP classes of a remote study (an IMAGE-level C-FIND), to propose for C-GET;
        when the node will not say, the storage classes pynetdicom proposes by default."""
        try:
            found = query(
                self.settings,
                node.remote,
                "IMAGE",
                {"StudyInstanceUID": study_uid, "SeriesInstanceUID": "", "SOPClassUID": ""},
                tls=tls,
            )
            classes = [str(m.SOPClassUID) for m in found if m.get("SOPClassUID")]
        except (KlinikaError, OSError):
            classes = []
        if classes:
            return classes
        from pynetdicom import StoragePresentationContexts

        return [str(c.abstract_syntax) for c in StoragePresentationContexts]

    def _store_received(self, node: DicomNode, part10: bytes) -> bool:
        """One instance a C-GET brought: through the one ingest path, audited like a C-STORE."""
        outcome = self.archive.store(part10)
        self.audit.record_soon(
            Actor(node.title, Role.MODALITY),
            "dicom:store",
            Outcome.SUCCESS if outcome.accepted else Outcome.FAILURE,
            source=f"{node.title}@{node.host}",
            study_uid=outcome.study_uid,
            series_uid=outcome.series_uid,
            sop_instance_uid=outcome.sop_instance_uid,
            details={"status": outcome.status, "reason": outcome.reason, "service": "C-GET"},
        )
        return outcome.accepted

    # ----------------------------------------------------------- job records
    def _create(
        self, kind: str, node: DicomNode, target: dict[str, Any], actor: Actor, total: int = 0
    ) -> Job:
        with self.database.writer.begin() as connection:
            key = connection.execute(
                sa.insert(dimse_jobs).values(
                    kind=kind,
                    node=node.title,
                    state=JobState.QUEUED.value,
                    target=target,
                    total=total,
                    created_by=actor.name,
                    created_at=int(self._now()),
                )
            ).inserted_primary_key
            assert key is not None
            job_id = key[0]
        return self.get(int(job_id))

    def _update(self, job_id: int, **values: Any) -> None:
        with self.database.writer.begin() as connection:
            connection.execute(
                sa.update(dimse_jobs).where(dimse_jobs.c.id == job_id).values(**values)
            )

    def _start(
        self,
        job: Job,
        work: Callable[[Callable[[int, int], None]], tuple[int, int, int, str]],
        actor: Actor,
        action: str,
        study_uid: str,
        source: str | None,
    ) -> None:
        written = [0.0]

        def progress(done: int, total: int) -> None:
            # at most every PROGRESS_SECONDS: a 3,000-slice study is not 3,000 index writes
            now = time.monotonic()
            if now - written[0] >= PROGRESS_SECONDS or done >= total:
                written[0] = now
                self._update(job.job_id, done=done, total=max(total, done))

        def run() -> None:
            with self._slots:
                self._update(job.job_id, state=JobState.RUNNING.value)
                try:
                    done, failed, warnings, message = work(progress)
                    state = JobState.DONE
                except (KlinikaError, OSError, ssl.SSLError) as exc:
                    log.warning("job %d (%s to %s) failed: %s", job.job_id, job.kind, job.node, exc)
                    current = self.get(job.job_id)
                    done, failed, warnings = current.done, current.failed, current.warnings
                    state, message = JobState.FAILED, str(exc) or type(exc).__name__
                except Exception as exc:  # a bug must not leave the job "running" for ever
                    log.exception("job %d failed", job.job_id)
                    current = self.get(job.job_id)
                    done, failed, warnings = current.done, current.failed, current.warnings
                    state, message = JobState.FAILED, f"internal error: {type(exc).__name__}"
                total = max(self.get(job.job_id).total, done + failed + warnings)
                self._update(
                    job.job_id,
                    state=state.value,
                    done=done + warnings if job.kind == "retrieve" else done,
                    failed=failed,
                    warnings=warnings,
                    total=total,
                    message=message[:2000],
                    finished_at=int(self._now()),
                )
                self.audit.record(
                    actor,
                    action,
                    Outcome.SUCCESS if state == JobState.DONE and not failed else Outcome.FAILURE,
                    study_uid=study_uid,
                    source=source,
                    details={
                        "phase": "finished",
                        "node": job.node,
                        "job": job.job_id,
                        "done": done,
                        "failed": failed,
                        "warnings": warnings,
                        "message": message[:200],
                    },
                )

        thread = threading.Thread(target=run, name=f"job-{job.job_id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def get(self, job_id: int) -> Job:
        with self.database.reader.connect() as connection:
            row = connection.execute(sa.select(dimse_jobs).where(dimse_jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return _job(dict(row._mapping))

    def list(self, limit: int = 100) -> list[Job]:
        """The newest jobs first."""
        with self.database.reader.connect() as connection:
            rows = connection.execute(
                sa.select(dimse_jobs).order_by(dimse_jobs.c.id.desc()).limit(limit)
            )
            return [_job(dict(row._mapping)) for row in rows]

    def mark_interrupted(self) -> int:
        """Jobs left queued or running by a server that stopped become ``interrupted``
        (called once when the server starts, before any job of its own); how many."""
        with self.database.writer.begin() as connection:
            result = connection.execute(
                sa.update(dimse_jobs)
                .where(dimse_jobs.c.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)))
                .values(
                    state=JobState.INTERRUPTED.value,
                    message="the server stopped while this job ran",
                    finished_at=int(self._now()),
                )
            )
        return int(result.rowcount or 0)

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for this process's jobs to end (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))


def _text(value: Any) -> str:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value) if value is not None else ""


def _job(row: Mapping[str, Any]) -> Job:
    return Job(
        int(row["id"]),
        row["kind"],
        row["node"],
        JobState(row["state"]),
        dict(row["target"] or {}),
        int(row["total"]),
        int(row["done"]),
        int(row["failed"]),
        int(row["warnings"]),
        row["message"] or "",
        row["created_by"],
        int(row["created_at"]),
        None if row["finished_at"] is None else int(row["finished_at"]),
    )


__all__ = ["EchoResult", "Job", "Jobs", "PeerError"]
