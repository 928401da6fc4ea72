"""What a received HL7 message does: check the sender, read the command, apply it through
the one service that owns the change, answer with the ACK.

ADT^A08 updates the patient's demographics and ADT^A40 merges patients through
:class:`~klinika.archive.management.StudyManagement` (instances rewritten and re-indexed in
one transaction, so QIDO-RS, WADO-RS metadata and C-FIND answer the new values at once);
ORM^O01 / OMI^O23 schedule or cancel a procedure step through
:class:`~klinika.workflow.Schedule`. Each change is one audit event written by that service;
a message refused before it reaches one (sender, type, fields) is an event of its own here.
A message is applied whole or not at all: every command is one service call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from klinika.archive import Archive
from klinika.archive.management import StudyManagement
from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth.permissions import Role, is_allowed
from klinika.dicom.attributes import Level
from klinika.errors import (
    Conflict,
    InvalidChange,
    InvalidQuery,
    KlinikaError,
    NotFound,
    StorageFull,
    StorageUnavailable,
)
from klinika.hl7.ack import acknowledgment
from klinika.hl7.messages import (
    AckCode,
    CancelOrder,
    Command,
    Header,
    MessageError,
    NewOrder,
    PatientMerge,
    PatientUpdate,
    check_header,
    codec_of,
    command_of,
    parse,
)
from klinika.index.query import Query
from klinika.workflow import Schedule, StepDetails

log = logging.getLogger(__name__)

#: The action each command needs (klinika.auth.permissions).
_ACTIONS = {
    PatientUpdate: "patient:sync",
    PatientMerge: "patient:sync",
    NewOrder: "workflow:schedule",
    CancelOrder: "workflow:schedule",
}


class Hl7Service:
    """Applies HL7 v2 messages.

    Parameters
    ----------
    archive, management, schedule, audit
        Where patients are looked up, changed and merged, where orders go, where events go.
    senders
        (application, facility) pairs whose messages are applied (facility ``*``: any).
    application
        Our name in the ACK's MSH-3 (the AE title).
    """

    def __init__(
        self,
        archive: Archive,
        management: StudyManagement,
        schedule: Schedule,
        audit: AuditTrail,
        *,
        senders: Sequence[tuple[str, str]],
        application: str = "KLINIKA",
    ) -> None:
        self.archive = archive
        self.management = management
        self.schedule = schedule
        self.audit = audit
        self.senders = tuple(senders)
        self.application = application

    def handle(self, raw: bytes, peer: str | None = None) -> bytes:
        """The ACK of one message (the bytes inside the MLLP block) from ``peer``, in the
        message's character set."""
        header = Header()
        try:
            parsed = parse(raw)
            header = parsed.header
            check_header(header)
            actor = self._sender(header, peer)
            command = command_of(parsed)
            action = _ACTIONS[type(command)]
            if not is_allowed(Role.INTERFACE, action):
                raise MessageError(f"an HL7 sender may not do {action}", code=207, ack="AR")
            note = self._apply(command, actor, peer)
        except MessageError as exc:
            self._refused(header, peer, exc)
            return self._ack(header, exc.ack, str(exc), exc.code, exc.location)
        except (StorageFull, StorageUnavailable) as exc:
            return self._ack(header, "AR", f"the archive cannot store now: {exc}", 207)
        except NotFound as exc:
            return self._ack(header, "AE", str(exc), 204)
        except (InvalidChange, InvalidQuery) as exc:
            return self._ack(header, "AE", str(exc), 102)
        except Conflict as exc:
            return self._ack(header, "AE", str(exc), 205)
        except KlinikaError as exc:
            return self._ack(header, "AE", str(exc), 207)
        except Exception:
            log.exception("HL7 message %s from %s failed", header.control_id, peer)
            return self._ack(header, "AE", "internal error: the message was not applied", 207)
        return self._ack(header, "AA", note)

    # ------------------------------------------------------------------ steps
    def _sender(self, header: Header, peer: str | None) -> Actor:
        """The sender as an audit actor, if ``hl7_senders`` names it.

        Raises
        ------
        MessageError
            (AR) for a sender that is not named.
        """
        app, facility = header.sending_application, header.sending_facility
        for allowed_app, allowed_facility in self.senders:
            if app == allowed_app and allowed_facility in ("*", facility):
                return Actor(f"{app}@{facility}" if facility else app, Role.INTERFACE.value)
        raise MessageError(
            f"sending application {app or '(none)'}@{facility or '(none)'} is not allowed "
            "(setting hl7_senders)",
            code=103,
            location="MSH^1^3",
            ack="AR",
        )

    def _apply(self, command: Command, actor: Actor, peer: str | None) -> str:
        """Apply ``command`` with one service call; the ACK's text."""
        if isinstance(command, PatientUpdate):
            if not self._held(command.patient_id):
                return f"patient {command.patient_id} is not held here: nothing to update"
            if not command.changes:
                return "no demographics in PID: nothing to update"
            result = self.management.update_patient(
                command.patient_id, command.changes, actor=actor, source=peer
            )
            return f"patient {command.patient_id} updated in {result.instances} instances"
        if isinstance(command, PatientMerge):
            if not self._held(command.prior_patient_id):
                return f"patient {command.prior_patient_id} is not held here: nothing to merge"
            if self._held(command.patient_id):
                result = self.management.merge_patients(
                    command.prior_patient_id, command.patient_id, actor=actor, source=peer
                )
            else:  # the surviving patient has no study here: the prior one takes its identity
                result = self.management.update_patient(
                    command.prior_patient_id,
                    {**command.changes, "PatientID": command.patient_id},
                    actor=actor,
                    source=peer,
                )
            return (
                f"patient {command.prior_patient_id} merged into {command.patient_id} "
                f"({result.instances} instances)"
            )
        if isinstance(command, NewOrder):
            step = self.schedule.create(StepDetails(**command.fields), actor, source=peer)
            return f"step {step.step_id} scheduled (accession {step.details.accession_number})"
        return self._cancel(command, actor, peer)

    def _cancel(self, command: CancelOrder, actor: Actor, peer: str | None) -> str:
        step_id = command.step_id
        if not step_id:
            match = {"AccessionNumber": command.accession_number}
            if command.patient_id:
                match["PatientID"] = command.patient_id
            steps = self.schedule.worklist(match, actor, source=peer)
            if not steps:
                raise NotFound(f"no open step has the accession number {command.accession_number}")
            if len(steps) > 1:
                raise MessageError(
                    f"{len(steps)} open steps have the accession number "
                    f"{command.accession_number}: name the step (SPS id)",
                    code=205,
                )
            step_id = steps[0].step_id
        step = self.schedule.cancel(step_id, actor, source=peer)
        return f"step {step.step_id} cancelled"

    def _held(self, patient_id: str) -> bool:
        """Whether the index holds a patient with this ID (through the query engine)."""
        query = Query(Level.PATIENT, {"PatientID": patient_id}, limit=1)
        return bool(self.archive.search(query).matches)

    def _refused(self, header: Header, peer: str | None, error: MessageError) -> None:
        """A message refused before any service saw it: one event, with why."""
        name = header.sending_application or "-"
        if header.sending_facility:
            name = f"{name}@{header.sending_facility}"
        self.audit.record(
            Actor(name, Role.INTERFACE.value),
            "hl7:message",
            Outcome.DENIED
            if error.ack == "AR" and error.location == "MSH^1^3"
            else Outcome.FAILURE,
            source=peer,
            details={
                "message": f"{header.message_type}^{header.trigger_event}",
                "control_id": header.control_id[:64],
                "ack": error.ack,
                "code": error.code,
                "location": error.location,
                "error": str(error),
            },
        )

    def _ack(
        self,
        header: Header,
        code: AckCode,
        text: str,
        error: int | None = None,
        location: str = "",
    ) -> bytes:
        ack = acknowledgment(
            header, code, application=self.application, text=text, error=error, location=location
        )
        return ack.encode(codec_of(header.charset), errors="replace")
