"""P-DATA read from the socket a PDU at a time, and C-STORE and C-FIND requests assembled without
pynetdicom's per-PDU objects.

pynetdicom's DUL thread reads a PDU 4 KB per ``recv`` into a growing ``bytearray``, copies
it to ``bytes``, decodes it into a ``P_DATA_TF`` object whose items are more copies, puts an
event on its queue for the state machine, turns the PDU into a ``P_DATA`` primitive, and the
DIMSE provider writes each fragment into a ``BytesIO``; once a message is whole its command
set is decoded with pydicom and set on a primitive whose setters validate every UID. Here a
P-DATA-TF PDU that arrives while the association is established (state Sta6, where the only
action is DT-2: hand the P-DATA to DIMSE) is read whole with ``recv_into``, its PDV items
are cut with ``struct`` and memoryviews, and:

- the fragments of a plain C-STORE or C-FIND request (the command sets
  :func:`decode_store_request` and :func:`decode_find_request` read) are kept as views into
  the PDUs and joined once, into the request's data set or identifier;
- every other PDV goes to pynetdicom's DIMSE provider as the one-item ``P_DATA`` primitive
  DT-2 would give it (its command fragments first gathered here, to tell which it is).

Every PDU on a plain socket is read here (this reader is installed with
:class:`klinika.dimse.direct.WakingSocket` only; TLS keeps pynetdicom's), a whole header
first, so a header split across TCP segments is waited for. Any other PDU, a P-DATA-TF in
any other state, or one while handlers are bound to pynetdicom's PDU events is handed to
pynetdicom's decoder and state machine as its own reader would.

References
----------
PS3.8 9.3.5 (P-DATA-TF PDU), PS3.8 9.2 (state machine: Sta6, Evt10, DT-2), PS3.8 E.2
(message control header), PS3.7 9.3.1.1 (C-STORE-RQ), PS3.7 6.3.1 (command set encoded
Implicit VR Little Endian).
"""

from __future__ import annotations

import io
import logging
import socket
import struct
from typing import Any

from pydicom.config import IGNORE
from pydicom.uid import UID
from pynetdicom import _config, evt
from pynetdicom.dimse_messages import C_FIND_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_FIND, C_STORE
from pynetdicom.pdu_primitives import P_DATA

log = logging.getLogger(__name__)

#: PDU type, reserved, PDU length (PS3.8 9.3.1).
_PDU_HEADER = struct.Struct(">BBL")
#: PDV item length, presentation context ID, message control header (PS3.8 9.3.5.1, E.2).
_PDV_HEADER = struct.Struct(">LBB")
_P_DATA_TF = 0x04
#: The PDU types of PS3.8 9.3 (A-ASSOCIATE-RQ … A-ABORT).
_PDU_TYPES = frozenset(range(0x01, 0x08))
#: Larger PDUs (a peer may announce up to 4 GiB when we accept any length) are read in
#: steps of this size, as they arrive, instead of being allocated at once.
_LARGEST_PDU = 1 << 24
_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")

#: The elements of a C-STORE-RQ command set (PS3.7 9.3.1.1), by element number of group 0000.
_STORE_REQUEST = {
    0x0000: "CommandGroupLength",
    0x0002: "AffectedSOPClassUID",
    0x0100: "CommandField",
    0x0110: "MessageID",
    0x0700: "Priority",
    0x0800: "CommandDataSetType",
    0x1000: "AffectedSOPInstanceUID",
    0x1030: "MoveOriginatorApplicationEntityTitle",
    0x1031: "MoveOriginatorMessageID",
}
#: The elements of a C-FIND-RQ command set (PS3.7 9.3.2.1), by element number of group 0000.
#: (Those of a C-STORE-RQ but the SOP Instance UID and the move originator.)
_FIND_REQUEST = {
    number: keyword
    for number, keyword in _STORE_REQUEST.items()
    if number in (0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800)
}
_C_STORE_RQ, _C_FIND_RQ = 0x0001, 0x0020
#: The elements a plain C-STORE-RSP carries (PS3.7 9.3.1.2), by element number of group 0000.
_STORE_RESPONSE = {
    0x0000: "CommandGroupLength",
    0x0002: "AffectedSOPClassUID",
    0x0100: "CommandField",
    0x0120: "MessageIDBeingRespondedTo",
    0x0800: "CommandDataSetType",
    0x0900: "Status",
    0x1000: "AffectedSOPInstanceUID",
}
_UIDS = ("AffectedSOPClassUID", "AffectedSOPInstanceUID")
_AE = "MoveOriginatorApplicationEntityTitle"
_NO_DATA_SET = 0x0101


class Command:
    """A command set read or written without pydicom, as EVT_DIMSE_RECV/SENT handlers
    (telemetry) read it: attributes by keyword, standing in for pynetdicom's ``Dataset``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _command_values(
    command: bytes | bytearray | memoryview, elements: dict[int, str]
) -> dict[str, Any] | None:
    """The values of a command set (Implicit VR Little Endian) holding only ``elements``,
    by keyword: UIDs and AE titles as text (ASCII, one value), the rest US or the UL group
    length; None for anything else."""
    view = memoryview(command)
    values: dict[str, Any] = {}
    offset = 0
    while offset < len(view):
        if offset + 8 > len(view):
            return None
        group, element, length = _ELEMENT.unpack_from(view, offset)
        offset += 8
        keyword = elements.get(element) if group == 0 else None
        if keyword is None or offset + length > len(view):
            return None
        raw = bytes(view[offset : offset + length])
        offset += length
        if keyword in _UIDS or keyword == _AE:
            text = raw.rstrip(b"\0 ")  # PS3.5 6.2: trailing padding; AE: leading spaces too
            text = text.lstrip(b" ") if keyword == _AE else text
            if not text.isascii() or b"\\" in text:
                return None
            values[keyword] = text.decode()
        elif length == 2:
            values[keyword] = _US.unpack(raw)[0]
        elif length == 4 and keyword == "CommandGroupLength":
            values[keyword] = _UL.unpack(raw)[0]
        else:
            return None
    return values


def decode_store_request(command: bytes | bytearray | memoryview) -> dict[str, Any] | None:
    """The values of a C-STORE-RQ command set, by keyword, read without pydicom; None for
    any other message or anything unusual (an unknown element, a multi-valued or non-ASCII
    value, a UID pynetdicom would refuse, no data set), which pynetdicom decodes itself."""
    values = _command_values(command, _STORE_REQUEST)
    if values is None or values.get("CommandField") != 0x0001 or "MessageID" not in values:
        return None
    if values.get("CommandDataSetType", _NO_DATA_SET) == _NO_DATA_SET:
        return None
    for keyword in _UIDS:
        # pynetdicom's rule (its primitive's setter), which would otherwise end the association
        if not 0 < len(values.get(keyword, "")) <= 64:
            return None
    return values


def decode_find_request(command: bytes | bytearray | memoryview) -> dict[str, Any] | None:
    """The values of a C-FIND-RQ command set (a query or worklist request), by keyword, read
    without pydicom; None for anything else or anything unusual, as
    :func:`decode_store_request`."""
    values = _command_values(command, _FIND_REQUEST)
    if values is None or values.get("CommandField") != _C_FIND_RQ or "MessageID" not in values:
        return None
    if values.get("CommandDataSetType", _NO_DATA_SET) == _NO_DATA_SET:
        return None
    if not 0 < len(values.get("AffectedSOPClassUID", "")) <= 64:
        return None
    return values


def decode_store_response(command: bytes | memoryview) -> tuple[C_STORE, Command] | None:
    """A C-STORE-RSP command set as pynetdicom's primitive, read without pydicom; None for
    anything else or anything unusual (an error comment, an offending element), which
    pynetdicom decodes itself."""
    values = _command_values(command, _STORE_RESPONSE)
    if values is None:
        return None
    if values.get("CommandField") != 0x8001 or values.get("CommandDataSetType") != _NO_DATA_SET:
        return None
    if "Status" not in values or "MessageIDBeingRespondedTo" not in values:
        return None
    response = C_STORE()
    response.MessageIDBeingRespondedTo = values["MessageIDBeingRespondedTo"]
    response.Status = values["Status"]
    set_affected_uids(
        response, values.get("AffectedSOPClassUID"), values.get("AffectedSOPInstanceUID")
    )
    return response, Command(values)


def set_affected_uids(primitive: Any, sop_class: str | None, sop_instance: str | None) -> None:
    """Set a primitive's Affected SOP Class and Instance UIDs without pynetdicom's and
    pydicom's validation of each (regular expressions, a fifth of a retrieve's CPU): they are
    UIDs we indexed when the instance arrived, a peer's answer we only compare and log, or a
    request's that :func:`decode_store_request` checked as pynetdicom would."""
    primitive._affected_sop_class_uid = UID(sop_class, IGNORE) if sop_class else None
    primitive._affected_sop_instance_uid = UID(sop_instance, IGNORE) if sop_instance else None


def store_request(values: dict[str, Any], data_set: bytes, context_id: int) -> C_STORE:
    """The C-STORE primitive pynetdicom's ``message_to_primitive`` would make of these
    values (:func:`decode_store_request`), its UIDs set without a second validation."""
    request = C_STORE()
    request.MessageID = values["MessageID"]
    if "Priority" in values:
        request.Priority = values["Priority"]
    if "MoveOriginatorApplicationEntityTitle" in values:
        request.MoveOriginatorApplicationEntityTitle = values[
            "MoveOriginatorApplicationEntityTitle"
        ]
    if "MoveOriginatorMessageID" in values:
        request.MoveOriginatorMessageID = values["MoveOriginatorMessageID"]
    set_affected_uids(request, values["AffectedSOPClassUID"], values["AffectedSOPInstanceUID"])
    request.DataSet = io.BytesIO(data_set)
    request._context_id = context_id
    return request


def find_request(values: dict[str, Any], identifier: bytes, context_id: int) -> C_FIND:
    """The C-FIND primitive pynetdicom's ``message_to_primitive`` would make of these values
    (:func:`decode_find_request`), its SOP Class UID set without a second validation."""
    request = C_FIND()
    request.MessageID = values["MessageID"]
    if "Priority" in values:
        request.Priority = values["Priority"]
    request._affected_sop_class_uid = UID(values["AffectedSOPClassUID"], IGNORE)
    request.Identifier = io.BytesIO(identifier)
    request._context_id = context_id
    return request


class Assembly:
    """The message being received on one association, while this reader holds it: command
    fragments until the command set is whole, then (a C-STORE or C-FIND request) the data
    set's."""

    def __init__(self) -> None:
        self.command = bytearray()
        self.request: dict[str, Any] | None = None
        self.context_id = 0
        self.chunks: list[memoryview] = []

    def reset(self) -> None:
        self.command = bytearray()
        self.request = None
        self.chunks = []


def read_pdu(dul: Any, assembly: Assembly) -> None:
    """Read the next PDU from the association's socket (the DUL thread found it readable).

    A P-DATA-TF of an established association has its PDVs passed on as the module's
    docstring says; any other PDU is decoded by pynetdicom (``_decode_pdu``, with its
    events) and queued for its state machine, as its own ``_read_pdu_data`` does. A
    connection that closes or fails mid-PDU is Evt17, an unknown PDU type or a malformed
    PDV list Evt19, as in pynetdicom.
    """
    raw = dul.socket.socket
    header = bytearray(6)
    if not _read_exactly(raw, memoryview(header)):
        dul.event_queue.put("Evt17")  # pynetdicom reads an empty header the same way
        return
    pdu_type, _, length = _PDU_HEADER.unpack(header)
    if pdu_type not in _PDU_TYPES:
        log.error("Unknown PDU type received '0x%02X'", pdu_type)
        dul.event_queue.put("Evt19")
        return
    pdu = _read_body(raw, header, length)
    if pdu is None:
        log.error("Connection closed before the entire PDU was received")
        dul.event_queue.put("Evt17")
        return
    if pdu_type != _P_DATA_TF or not _direct(dul):
        _to_state_machine(dul, pdu)
        return
    view = memoryview(pdu)
    offset, end = 6, len(pdu)
    while offset < end:
        if offset + 6 <= end:
            item_length, context_id, control = _PDV_HEADER.unpack_from(pdu, offset)
            item_end = offset + 4 + item_length
            if item_length >= 2 and item_end <= end:
                _receive_pdv(dul.assoc, assembly, context_id, control, view[offset + 5 : item_end])
                offset = item_end
                continue
        log.error("Unable to decode the received PDU data")
        dul.event_queue.put("Evt19")
        return


def _direct(dul: Any) -> bool:
    """Whether this association's P-DATA is read here: established (Sta6, where the only
    action is DT-2), no handler bound to the PDU events, no pynetdicom option that wants
    its own path (its log handlers, data sets received into files)."""
    assoc = dul.assoc
    return bool(
        dul.state_machine.current_state == "Sta6"
        and _config.LOG_HANDLER_LEVEL == "none"
        and not _config.STORE_RECV_CHUNKED_DATASET
        and not assoc.get_handlers(evt.EVT_PDU_RECV)
        and not assoc.get_handlers(evt.EVT_DATA_RECV)
    )


def _read_body(raw: socket.socket, header: bytearray, length: int) -> bytearray | None:
    """The whole PDU (``header`` and ``length`` more bytes), or None if the connection ends
    first. A length past ``_LARGEST_PDU`` is read in steps, so that a peer's claim is not
    allocated before its bytes arrive."""
    if length <= _LARGEST_PDU:
        pdu = bytearray(6 + length)
        pdu[:6] = header
        return pdu if _read_exactly(raw, memoryview(pdu)[6:]) else None
    pdu = bytearray(header)
    while len(pdu) < 6 + length:
        step = bytearray(min(_LARGEST_PDU, 6 + length - len(pdu)))
        if not _read_exactly(raw, memoryview(step)):
            return None
        pdu += step
    return pdu


def _to_state_machine(dul: Any, pdu: bytearray) -> None:
    """A PDU this reader does not take apart, as pynetdicom's ``_read_pdu_data`` ends."""
    try:
        decoded, event = dul._decode_pdu(pdu)
        dul.event_queue.put(event)
    except Exception as exc:
        log.error("Unable to decode the received PDU data")
        log.exception(exc)
        dul.event_queue.put("Evt19")
        return
    dul._recv_pdu.put(decoded)


def _read_exactly(raw: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from the socket; False if the connection closes or fails first."""
    filled = 0
    try:
        while filled < len(view):
            got = raw.recv_into(view[filled:])
            if not got:
                return False
            filled += got
    except OSError:
        return False
    return True


def _receive_pdv(
    assoc: Any, assembly: Assembly, context_id: int, control: int, pdv: memoryview
) -> None:
    """One PDV (``pdv`` starts with its message control header): into the assembly, or to
    pynetdicom's DIMSE provider."""
    is_command, is_last = control & 0x01, control & 0x02
    if assembly.request is not None:  # a C-STORE or C-FIND request's data set
        if is_command:
            log.error("A command fragment arrived inside a data set")
            assoc.dul.event_queue.put("Evt19")
            assembly.reset()
            return
        assembly.chunks.append(pdv[1:])
        if is_last:
            _request_received(assoc, assembly)
        return
    if is_command and (assembly.command or assoc.dimse.message is None):
        assembly.command += pdv[1:]
        if is_last:
            _command_received(assoc, assembly, context_id)
        return
    _to_pynetdicom(assoc, context_id, bytes(pdv))


def _command_received(assoc: Any, assembly: Assembly, context_id: int) -> None:
    """A whole command set: a plain C-STORE or C-FIND request is kept here, anything else
    goes to pynetdicom as one last command fragment."""
    request = decode_store_request(assembly.command) or decode_find_request(assembly.command)
    if request is None:
        command = bytes(assembly.command)
        assembly.reset()
        _to_pynetdicom(assoc, context_id, b"\x03" + command)
        return
    assembly.command = bytearray()
    assembly.request, assembly.context_id = request, context_id


def _request_received(assoc: Any, assembly: Assembly) -> None:
    """A whole C-STORE or C-FIND request: to the association's message queue, as pynetdicom's
    ``receive_primitive`` would put it, after EVT_DIMSE_RECV."""
    values, context_id = assembly.request or {}, assembly.context_id
    data_set = b"".join(assembly.chunks)
    assembly.reset()
    request: C_STORE | C_FIND
    message: C_STORE_RQ | C_FIND_RQ
    if values["CommandField"] == _C_FIND_RQ:
        request = find_request(values, data_set, context_id)
        message = C_FIND_RQ.__new__(C_FIND_RQ)
        message.data_set = request.Identifier
    else:
        request = store_request(values, data_set, context_id)
        message = C_STORE_RQ.__new__(C_STORE_RQ)
        message.data_set = request.DataSet
    message.command_set = Command(values)  # type: ignore[assignment]
    message.context_id = context_id
    evt.trigger(assoc, evt.EVT_DIMSE_RECV, {"message": message})
    assoc.dimse.msg_queue.put((context_id, request))


def _to_pynetdicom(assoc: Any, context_id: int, pdv: bytes) -> None:
    """One PDV as the P-DATA primitive DT-2 hands pynetdicom's DIMSE provider."""
    primitive = P_DATA()
    primitive.presentation_data_value_list = []  # filled as DT-2's to_primitive() does
    primitive.presentation_data_value_list.append((context_id, pdv))
    assoc.dimse.receive_primitive(primitive)
