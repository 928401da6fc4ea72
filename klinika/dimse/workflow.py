"""The workflow SCPs: Modality Worklist C-FIND, MPPS N-CREATE/N-SET and Storage Commitment
Push Model N-ACTION (with its N-EVENT-REPORT), each a thin translation around one
:class:`~klinika.workflow.Schedule` call.

A calling AE is admitted as for any service (:mod:`klinika.dimse.peers`), then authorized for
``worklist``, ``mpps`` or ``commit`` (its entry in ``KLINIKA_MODALITIES`` must list the service;
all services when it lists none).

References
----------
PS3.4 K.4.1 / K.6.1 (Modality Worklist FIND), F.7 (MPPS SOP Class), J.3 (Storage Commitment
Push Model), PS3.7 §10.1 (DIMSE-N statuses), Annex C.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pynetdicom import AE, build_role, events
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.sop_class import (
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth import AuthService
from klinika.config import Settings
from klinika.dimse import status
from klinika.dimse.direct import guard_reactor
from klinika.dimse.peers import calling_peer
from klinika.dimse.tls import is_certified
from klinika.errors import InvalidQuery, KlinikaError
from klinika.workflow import (
    CommitmentResult,
    DuplicatePerformedStep,
    FailureReason,
    InvalidAttribute,
    PerformedStepFinal,
    Schedule,
    UnknownPerformedStep,
    worklist_item,
)

log = logging.getLogger(__name__)

#: FailureReason (0008,1197) per reason of the workflow room (PS3.4 J.3.3.1.1.2).
FAILURE_REASONS: dict[FailureReason, int] = {
    FailureReason.NO_SUCH_INSTANCE: status.NO_SUCH_OBJECT_INSTANCE,
    FailureReason.CLASS_INSTANCE_CONFLICT: status.CLASS_INSTANCE_CONFLICT,
}


def _status(code: int, comment: str, **elements: Any) -> Dataset:
    answer = Dataset()
    answer.Status = code
    answer.ErrorComment = comment[:64]
    for keyword, value in elements.items():
        setattr(answer, keyword, value)
    return answer


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(_text(v) for v in value)
    return str(value)


def worklist_match(identifier: Dataset) -> dict[str, str]:
    """The match keys of a worklist identifier: top-level attributes and those of the first
    Scheduled Procedure Step Sequence item (keyword -> value as text). Other sequences are
    return keys only.

    References
    ----------
    PS3.4 K.6.1.2 (keys), C.2.2.2.6 (sequence matching).
    """
    match: dict[str, str] = {}
    for element in identifier:
        if not element.keyword or element.keyword == "SpecificCharacterSet":
            continue
        if element.VR == "SQ":
            if element.keyword == "ScheduledProcedureStepSequence" and element.value:
                for sub in element.value[0]:
                    if sub.keyword and sub.VR != "SQ":
                        match[sub.keyword] = _text(sub.value)
            continue
        match[element.keyword] = _text(element.value)
    return match


def worklist_answer(requested: Dataset, item: Dataset) -> Dataset:
    """The keys of ``requested`` filled from a step's ``item`` (an empty sequence key returns
    the whole sequence, an item of keys those keys of each item; unknown keys are returned
    empty). PS3.4 C.2.2.1.2, C.2.2.2.6."""
    answer = Dataset()
    for element in requested:
        if element.keyword == "SpecificCharacterSet":
            continue
        if element.tag not in item:
            answer.add_new(element.tag, element.VR, [] if element.VR == "SQ" else None)
            continue
        held = item[element.tag]
        if element.VR == "SQ" and element.value and len(element.value[0]):
            answer.add_new(
                element.tag,
                "SQ",
                Sequence([worklist_answer(element.value[0], sub) for sub in held.value]),
            )
        else:
            answer[element.tag] = held
    if "SpecificCharacterSet" in item:
        answer.SpecificCharacterSet = item.SpecificCharacterSet
    return answer


@dataclass
class WorkflowHandlers:
    """The workflow services of our AE, bound by :mod:`klinika.dimse.server`.

    ``report_wait``: how long (seconds) after a storage commitment N-ACTION response the
    requestor may release its association to get the N-EVENT-REPORT on a new one; a
    requestor still associated then gets it on the same association.
    """

    schedule: Schedule
    auth: AuthService
    audit: AuditTrail
    settings: Settings
    report_wait: float = 2.0

    def _allowed(self, event: events.Event, service: str) -> bool:
        title, address = calling_peer(event)
        return self.auth.authorize_ae(title, address, service, certified=is_certified(event.assoc))

    @staticmethod
    def _actor(event: events.Event) -> tuple[Actor, str]:
        title, address = calling_peer(event)
        return Actor(title or "-", "modality"), f"{title}@{address}"

    # ------------------------------------------------------------ Modality Worklist
    def worklist(self, event: events.Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """Scheduled steps matching the identifier, one pending answer each."""
        if not self._allowed(event, "worklist"):
            yield _status(status.NOT_AUTHORIZED, "this AE may not query the worklist"), None
            return
        actor, source = self._actor(event)
        identifier = event.identifier
        try:
            steps = self.schedule.worklist(worklist_match(identifier), actor, source=source)
        except KlinikaError as exc:
            code = (
                status.IDENTIFIER_MISMATCH
                if isinstance(exc, InvalidQuery)
                else status.FIND_UNABLE_TO_PROCESS
            )
            yield _status(code, str(exc)), None
            return
        for step in steps:
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            yield status.PENDING, worklist_answer(identifier, worklist_item(step))

    # ------------------------------------------------------------ MPPS
    def create_performed(self, event: events.Event) -> tuple[int | Dataset, Dataset | None]:
        """N-CREATE of an MPPS instance (PS3.4 F.7.2.1)."""
        if not self._allowed(event, "mpps"):
            return _status(status.NOT_AUTHORIZED, "this AE may not report procedure steps"), None
        actor, source = self._actor(event)
        requested = cast(N_CREATE, event.request).AffectedSOPInstanceUID
        try:
            attributes = event.attribute_list
            performed = self.schedule.start_performed(
                str(requested) if requested else None, attributes, actor, source=source
            )
        except InvalidAttribute as exc:
            code = status.MISSING_ATTRIBUTE if exc.missing else status.INVALID_ATTRIBUTE_VALUE
            return _status(code, str(exc)), None
        except DuplicatePerformedStep as exc:
            return _status(status.DUPLICATE_SOP_INSTANCE, str(exc)), None
        except KlinikaError as exc:
            return _status(status.PROCESSING_FAILURE, str(exc)), None
        answer = Dataset()
        answer.update(attributes)
        if not requested:
            answer.AffectedSOPInstanceUID = performed.sop_instance_uid
        return status.SUCCESS, answer

    def set_performed(self, event: events.Event) -> tuple[int | Dataset, Dataset | None]:
        """N-SET of an MPPS instance (PS3.4 F.7.2.2): all of it, or nothing."""
        if not self._allowed(event, "mpps"):
            return _status(status.NOT_AUTHORIZED, "this AE may not report procedure steps"), None
        actor, source = self._actor(event)
        uid = str(cast(N_SET, event.request).RequestedSOPInstanceUID or "")
        try:
            modifications = event.modification_list
            self.schedule.update_performed(uid, modifications, actor, source=source)
        except UnknownPerformedStep as exc:
            return _status(status.NO_SUCH_OBJECT_INSTANCE, str(exc)), None
        except PerformedStepFinal as exc:
            return _status(
                status.PROCESSING_FAILURE, str(exc), ErrorID=status.MPPS_NO_LONGER_UPDATABLE
            ), None
        except InvalidAttribute as exc:
            code = status.MISSING_ATTRIBUTE if exc.missing else status.INVALID_ATTRIBUTE_VALUE
            return _status(code, str(exc)), None
        except KlinikaError as exc:
            return _status(status.PROCESSING_FAILURE, str(exc)), None
        return status.SUCCESS, modifications

    # ------------------------------------------------------------ Storage Commitment
    def commit(self, event: events.Event) -> tuple[int | Dataset, Dataset | None]:
        """N-ACTION Request Storage Commitment (PS3.4 J.3.2): answered at once; the outcome
        follows as an N-EVENT-REPORT (:meth:`_report`)."""
        if not self._allowed(event, "commit"):
            return _status(status.NOT_AUTHORIZED, "this AE may not ask for commitment"), None
        if event.action_type != 1:
            return _status(status.NO_SUCH_ACTION_TYPE, "action type 1 only"), None
        actor, source = self._actor(event)
        try:
            information = event.action_information
            transaction = str(information.get("TransactionUID") or "")
            references = [
                (str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
                for item in information.get("ReferencedSOPSequence") or []
            ]
        except (AttributeError, ValueError, TypeError) as exc:
            return _status(status.INVALID_ARGUMENT_VALUE, f"bad action information: {exc}"), None
        if not transaction or not references:
            return _status(
                status.INVALID_ARGUMENT_VALUE, "TransactionUID and ReferencedSOPSequence needed"
            ), None
        try:
            result = self.schedule.commitment(transaction, references, actor, source=source)
        except KlinikaError as exc:
            return _status(status.PROCESSING_FAILURE, str(exc)), None
        title, _ = calling_peer(event)
        threading.Thread(
            target=self._report,
            args=(event.assoc, result, title),
            name="storage-commitment-report",
            daemon=True,
        ).start()
        return status.SUCCESS, None

    def _report(self, assoc: Association, result: CommitmentResult, title: str) -> None:
        """Send the N-EVENT-REPORT: on the requestor's association if it is still open after
        ``report_wait`` seconds, otherwise on a new association to the address configured
        for its AE title (we propose the SCP role, PS3.4 J.3.3)."""
        report, event_type = commitment_report(result, self.settings.ae_title)
        deadline = time.monotonic() + self.report_wait
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.05)
        if assoc.is_established:
            try:
                answer, _ = assoc.send_n_event_report(
                    report,
                    event_type,
                    StorageCommitmentPushModel,
                    StorageCommitmentPushModelInstance,
                )
                if answer.get("Status") == status.SUCCESS:
                    log.info("storage commitment %s reported to %s", result.transaction_uid, title)
                    self._reported(result, title, Outcome.SUCCESS, "same association")
                    return
            except (RuntimeError, ValueError) as exc:
                log.info("storage commitment report on the same association failed: %s", exc)
        delivered = self._report_on_new_association(report, event_type, result, title)
        self._reported(
            result, title, Outcome.SUCCESS if delivered else Outcome.FAILURE, "new association"
        )

    def _reported(self, result: CommitmentResult, title: str, outcome: Outcome, how: str) -> None:
        """One audit event per N-EVENT-REPORT: to whom, how, and what it said."""
        self.audit.record_soon(
            Actor(self.settings.ae_title, "system"),
            "workflow:perform",
            outcome,
            source=title,
            details={
                "service": "storage commitment report",
                "transaction": result.transaction_uid,
                "delivery": how,
                "committed": len(result.committed),
                "failed": len(result.failed),
            },
        )

    def _report_on_new_association(
        self, report: Dataset, event_type: int, result: CommitmentResult, title: str
    ) -> bool:
        remote = next((m for m in self.settings.modalities if m.title == title), None)
        if remote is None:
            log.warning(
                "storage commitment %s: %s released before the report and has no configured "
                "address",
                result.transaction_uid,
                title,
            )
            return False
        ae = AE(ae_title=self.settings.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
        ae.add_requested_context(StorageCommitmentPushModel)
        role = build_role(StorageCommitmentPushModel, scp_role=True)
        for attempt in range(3):
            assoc = guard_reactor(
                ae.associate(remote.host, remote.port, ae_title=title, ext_neg=[role])
            )
            if assoc.is_established:
                try:
                    answer, _ = assoc.send_n_event_report(
                        report,
                        event_type,
                        StorageCommitmentPushModel,
                        StorageCommitmentPushModelInstance,
                    )
                finally:
                    assoc.release()
                if answer.get("Status") == status.SUCCESS:
                    log.info(
                        "storage commitment %s reported to %s on a new association",
                        result.transaction_uid,
                        title,
                    )
                    return True
            time.sleep(2**attempt)
        log.warning(
            "storage commitment %s: the report to %s@%s:%d failed",
            result.transaction_uid,
            title,
            remote.host,
            remote.port,
        )
        return False


def commitment_report(result: CommitmentResult, ae_title: str) -> tuple[Dataset, int]:
    """The N-EVENT-REPORT's Event Information and Event Type ID: 1 when every instance is
    committed, 2 when some failed (PS3.4 J.3.3.1.1)."""
    report = Dataset()
    report.TransactionUID = result.transaction_uid
    report.RetrieveAETitle = ae_title
    committed = []
    for sop_class, uid in result.committed:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        committed.append(item)
    if committed:
        report.ReferencedSOPSequence = committed
    failed = []
    for sop_class, uid, reason in result.failed:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        item.FailureReason = FAILURE_REASONS[reason]
        failed.append(item)
    if failed:
        report.FailedSOPSequence = failed
    return report, 2 if failed else 1
