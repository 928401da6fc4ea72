"""Sending stored instances out (C-GET, C-MOVE, ``klinika send``) in what the peer accepts.

Each instance goes out as stored when the peer accepted its transfer syntax: the data set
bytes after the File Meta Information, never parsed into a pydicom ``Dataset`` and re-encoded.
Otherwise it is transcoded (:mod:`klinika.dicom.transcode`, the room WADO-RS uses) to a
little-endian uncompressed syntax the peer accepted or, failing that, to a lossless compressed
one it accepted (JPEG-LS, JPEG 2000, RLE, HTJ2K: never lossy, so a retrieve never loses
pixels silently), or the sub-operation fails with a reason in the log.

The one pynetdicom hook: pynetdicom 3.0's Query/Retrieve SCP takes only ``Dataset`` objects
from a C-GET/C-MOVE handler and hands each to ``Association.send_c_store``, which encodes it
(its ``STORE_SEND_CHUNKED_DATASET`` path exists for file paths given to ``send_c_store``
directly, not for handler yields). So the handler yields :class:`StoredInstance` (a
``Dataset`` that carries the encoded data set), and the association that sends it is adopted
as a :class:`StoredBytesAssociation`, whose ``send_c_store`` sends those bytes as they are.
pynetdicom keeps doing the rest: sub-operation counts, Failed SOP Instance UID List, pending
and final responses, C-CANCEL.

References
----------
PS3.4 C.4.2.3 / C.4.3.3 (C-MOVE / C-GET SCP behaviour), PS3.7 9.1.1 (C-STORE),
PS3.8 9.3.5 (presentation context negotiation), PS3.7 D.3.3.4 (SCP/SCU role selection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydicom.config import IGNORE
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import build_context
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.presentation import PresentationContext

from klinika.archive import Archive, InstanceRecord
from klinika.dicom.transcode import (
    CannotTranscode,
    can_encode,
    can_transcode,
    data_set_offset,
    transcode,
)
from klinika.dimse.direct import EncodedDataSet
from klinika.dimse.receive import set_affected_uids

log = logging.getLogger(__name__)

#: The uncompressed syntaxes every context offers after the stored one, in this order.
FALLBACKS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
#: The lossless compressed syntaxes offered after those, in this order: never a lossy one.
LOSSLESS = (JPEGLSLossless, JPEG2000Lossless, RLELossless, HTJ2KLossless)


@cache
def writable_lossless() -> tuple[str, ...]:
    """The syntaxes of :data:`LOSSLESS` whose encoder is installed (HTJ2K needs OpenJPH)."""
    return tuple(s for s in LOSSLESS if can_encode(s, bits_allocated=0) is None)


#: PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255, so at most 128 contexts.
MAX_CONTEXTS = 128
#: C-STORE statuses given to sub-operations we cannot attempt (PS3.4 B.2.3).
REFUSED_SOP_CLASS = 0x0122
CANNOT_UNDERSTAND = 0xC000


class StoredInstance(Dataset):
    """One instance ready to send: its UIDs and either its encoded data set (in ``syntax``,
    on ``context_id``) or the reason it cannot be sent.

    It is a ``Dataset`` only so that pynetdicom's retrieve SCP accepts it and can list its
    SOP Instance UID among the failed ones; its elements are the two UIDs, nothing else.
    """

    def __init__(
        self,
        record: InstanceRecord,
        *,
        payload: bytes | memoryview | None = None,
        syntax: str | None = None,
        context_id: int | None = None,
        failure: str | None = None,
        failure_status: int = CANNOT_UNDERSTAND,
    ) -> None:
        super().__init__()
        for tag, uid in ((0x00080016, record.sop_class_uid), (0x00080018, record.sop_instance_uid)):
            # indexed UIDs: pydicom's validation of each value is a retrieve's largest cost
            self[tag] = DataElement(tag, "UI", UID(uid, IGNORE), validation_mode=IGNORE)
        self.payload = payload
        self.syntax = syntax
        self.context_id = context_id
        self.failure = failure
        self.failure_status = failure_status
        self.transcoded = syntax is not None and syntax != record.transfer_syntax


def proposed_contexts(records: Iterable[InstanceRecord]) -> list[PresentationContext]:
    """Contexts to propose for sending ``records``: per SOP class and stored transfer syntax,
    the stored syntax first, then Explicit and Implicit VR Little Endian; and per SOP class,
    while there is room, one context of the lossless compressed syntaxes of
    :func:`writable_lossless` for a peer that takes none of those (it picks one).

    Instances stored uncompressed little endian share one context per SOP class. Above 128
    contexts, every SOP class keeps its uncompressed context and the compressed ones with the
    most instances fill the rest (the others are transcoded).
    """
    counts: dict[tuple[str, str], int] = {}
    for record in records:
        stored = record.transfer_syntax if record.transfer_syntax not in FALLBACKS else ""
        key = (record.sop_class_uid, stored)
        counts[key] = counts.get(key, 0) + 1
    plain = list(dict.fromkeys(sop for sop, _ in counts))
    special = sorted((k for k in counts if k[1]), key=lambda k: -counts[k])
    if len(counts) > MAX_CONTEXTS:
        chosen = {(sop, "") for sop in plain[:MAX_CONTEXTS]}
        chosen.update(special[: max(0, MAX_CONTEXTS - len(chosen))])
    else:
        chosen = set(counts)
    contexts = []
    for sop, stored in counts:  # first-seen order: the order of the records
        if (sop, stored) in chosen:
            contexts.append(build_context(sop, [s for s in (stored, *FALLBACKS) if s]))
    # a context of its own: a peer that takes uncompressed data keeps choosing it, not the
    # compressed syntax it may prefer (storescp +xa prefers JPEG 2000)
    for sop in plain[: max(0, MAX_CONTEXTS - len(contexts))]:
        contexts.append(build_context(sop, list(writable_lossless())))
    return contexts


@dataclass
class Accepted:
    """The storage contexts a peer accepted for us to send on: SOP class -> syntax -> ID."""

    contexts: dict[str, dict[str, int]]

    @classmethod
    def of(cls, assoc: Association) -> Accepted:
        """Contexts of an established association on which we may act as Storage SCU
        (for C-GET, those the peer gave us the SCU role for by role selection)."""
        table: dict[str, dict[str, int]] = {}
        for context in assoc.accepted_contexts:
            if not context.as_scu or context.context_id is None:
                continue
            syntax = str(context.transfer_syntax[0])
            table.setdefault(str(context.abstract_syntax), {}).setdefault(
                syntax, context.context_id
            )
        return cls(table)

    def choices(self, record: InstanceRecord) -> list[tuple[str, int]]:
        """(transfer syntax, context ID) pairs to send ``record`` in, best first: as stored
        if accepted, else the accepted uncompressed little-endian syntaxes, then the accepted
        lossless compressed ones, that it can be transcoded to."""
        syntaxes = self.contexts.get(record.sop_class_uid, {})
        if record.transfer_syntax in syntaxes:
            return [(record.transfer_syntax, syntaxes[record.transfer_syntax])]
        return [
            (target, syntaxes[target])
            for target in (*FALLBACKS, *writable_lossless())
            if target in syntaxes and can_transcode(record.transfer_syntax, target)
        ]


def prepare(archive: Archive, record: InstanceRecord, accepted: Accepted) -> StoredInstance:
    """The instance as it will be sent on this association, or why it cannot be."""
    choices = accepted.choices(record)
    if not choices:
        offered = ", ".join(sorted(accepted.contexts.get(record.sop_class_uid, {}))) or "none"
        reason = (
            f"{record.sop_instance_uid}: the peer accepted no transfer syntax for "
            f"{UID(record.sop_class_uid).name} that {UID(record.transfer_syntax).name} "
            f"can be sent in (accepted: {offered})"
        )
        return StoredInstance(record, failure=reason, failure_status=REFUSED_SOP_CLASS)
    stored = archive.read(record)
    reasons = []
    for syntax, context_id in choices:  # a compressed target may not take this pixel module
        try:
            part10 = stored if syntax == record.transfer_syntax else transcode(stored, syntax)
        except CannotTranscode as exc:
            reasons.append(str(exc))
            continue
        payload = memoryview(part10)[data_set_offset(part10) :]  # not a copy
        return StoredInstance(record, payload=payload, syntax=syntax, context_id=context_id)
    return StoredInstance(record, failure=f"{record.sop_instance_uid}: {'; '.join(reasons)}")


def send_instance(
    assoc: Association,
    item: StoredInstance,
    msg_id: int = 1,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> Dataset:
    """C-STORE the encoded data set of ``item``; the peer's status, as ``send_c_store``
    returns it (an empty Dataset when no response came and the association was aborted).

    This follows pynetdicom's ``Association.send_c_store`` step by step, minus the encoding.
    """
    if item.failure is not None or item.payload is None or item.context_id is None:
        log.warning("C-STORE sub-operation not attempted: %s", item.failure)
        status = Dataset()
        status.Status = item.failure_status
        return status
    if not assoc.is_established:
        status = Dataset()
        status.Status = CANNOT_UNDERSTAND
        return status
    request = C_STORE()
    request.MessageID = msg_id
    request.Priority = priority
    request.MoveOriginatorApplicationEntityTitle = originator_aet
    request.MoveOriginatorMessageID = originator_id
    set_affected_uids(request, item.SOPClassUID, item.SOPInstanceUID)
    request.DataSet = EncodedDataSet(item.payload)
    _hold_reactor(assoc)
    assoc.dimse.send_msg(request, item.context_id)
    _, response = assoc.dimse.get_msg(block=True)
    if response is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(response)


def _hold_reactor(assoc: Association) -> None:
    """Keep the association's reactor thread from taking our C-STORE responses off the queue.

    pynetdicom's ``send_c_store`` pauses the reactor for each message and lets it run again
    after; a reactor resumed between two sub-operations can be caught past its checkpoint and
    take the next response (it logs "Received unexpected C-STORE service message"; the
    sub-operation then waits for the DIMSE timeout). So the reactor is paused once and stays
    paused until ``release()``, which pauses it as well and lets it go at the end. An acceptor
    serving our C-GET needs nothing: its reactor is the thread that sends.
    """
    if threading.current_thread() is assoc:
        return
    checkpoint = assoc._reactor_checkpoint
    if not checkpoint.is_set():
        return  # held since an earlier sub-operation
    checkpoint.clear()
    while True:  # paused = its flag is up and stays up past one reactor loop (~1 ms)
        while not assoc._is_paused and assoc.is_established:
            time.sleep(0.0001)
        time.sleep(0.003)
        if assoc._is_paused or not assoc.is_established:
            return


class StoredBytesAssociation(Association):
    """An association whose ``send_c_store`` also takes :class:`StoredInstance` (sent as
    encoded); anything else goes to pynetdicom's own implementation."""

    def send_c_store(
        self,
        dataset: Any,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        if isinstance(dataset, StoredInstance):
            return send_instance(self, dataset, msg_id, priority, originator_aet, originator_id)
        return super().send_c_store(dataset, msg_id, priority, originator_aet, originator_id)


def adopt(assoc: Association) -> Association:
    """Make ``assoc`` a :class:`StoredBytesAssociation` (it adds one method, no state)."""
    if not isinstance(assoc, StoredBytesAssociation):
        assoc.__class__ = StoredBytesAssociation
    return assoc
