"""P-DATA read a PDU at a time (:mod:`klinika.dimse.receive`): however a peer cuts a C-STORE
request into PDUs and PDVs, the instance is stored byte for byte as sent; every other message
still reaches pynetdicom. The peer is a pynetdicom association to the in-process listener
whose socket the test writes PDUs to directly, so the fragmenting is the test's."""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.uid import ImplicitVRLittleEndian as ImplicitVRLE
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_FIND_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_STORE
from pynetdicom.dsutils import decode, encode
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from klinika.dimse import receive
from klinika.dimse.receive import decode_find_request, decode_store_request
from tests.conftest import PYDICOM_DATA, wait_until
from tests.dimse.conftest import LocalDimse, associate
from tests.dimse.test_dcmtk import dataset_part
from tests.factories import make_instance

#: (context ID, message control header, fragment) of one PDV.
Pdv = tuple[int, int, bytes]


def _command(primitive: Any, message_class: type[Any]) -> bytes:
    """A command set as pynetdicom encodes it (Implicit VR Little Endian, group length)."""
    message = message_class()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


def _store_command(part10: bytes, message_id: int = 1, **extra: Any) -> bytes:
    meta = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    request = C_STORE()
    request.MessageID = message_id
    request.AffectedSOPClassUID = meta.SOPClassUID
    request.AffectedSOPInstanceUID = meta.SOPInstanceUID
    request.Priority = 2
    for keyword, value in extra.items():
        setattr(request, keyword, value)
    request.DataSet = io.BytesIO(b"\0")  # only its presence counts: CommandDataSetType 0x0001
    return _command(request, C_STORE_RQ)


def _fragments(payload: bytes, size: int, context_id: int, last: int) -> list[Pdv]:
    """``payload`` as PDVs of at most ``size`` bytes; ``last`` flags the final one."""
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    return [
        (context_id, last if n == len(pieces) - 1 else last & 0x01, piece)
        for n, piece in enumerate(pieces)
    ]


def _message(
    command: bytes, data_set: bytes | None, context_id: int, command_size: int, data_size: int
) -> list[Pdv]:
    pdvs = _fragments(command, command_size, context_id, 0x03)
    if data_set is not None:
        pdvs += _fragments(data_set, data_size, context_id, 0x02)
    return pdvs


def _pdus(pdvs: list[Pdv], per_pdu: int) -> bytes:
    """P-DATA-TF PDUs (PS3.8 9.3.5) of ``per_pdu`` PDVs each."""
    out = []
    for start in range(0, len(pdvs), per_pdu):
        items = b"".join(
            struct.pack(">LBB", len(data) + 2, context_id, control) + data
            for context_id, control, data in pdvs[start : start + per_pdu]
        )
        out.append(struct.pack(">BBL", 0x04, 0, len(items)) + items)
    return b"".join(out)


def _context_id(assoc: Association, sop_class: str, syntax: str) -> int:
    for context in assoc.accepted_contexts:
        if context.abstract_syntax == sop_class and context.transfer_syntax[0] == syntax:
            return int(context.context_id or 0)
    raise AssertionError(f"no accepted context for {sop_class} in {syntax}")


def _send_raw(assoc: Association, pdus: bytes, responses: int) -> list[Any]:
    """Write ``pdus`` on the association's socket as they are, and wait for ``responses``
    DIMSE responses (the reactor paused, as pynetdicom's own senders do)."""
    assoc._reactor_checkpoint.clear()
    wait_until(lambda: assoc._is_paused, 10, interval=0.0005)
    try:
        assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
        assoc.dul.socket.socket.sendall(pdus)
        return [assoc.dimse.get_msg(block=True)[1] for _ in range(responses)]
    finally:
        assoc._reactor_checkpoint.set()


@pytest.fixture
def store_assoc(local: LocalDimse) -> Iterator[Association]:
    assoc = associate(
        local.port,
        (CTImageStorage, [ExplicitVRLittleEndian]),
        (SecondaryCaptureImageStorage, [DeflatedExplicitVRLittleEndian]),
        Verification,
    )
    yield assoc
    assoc.release()


@pytest.mark.parametrize(
    ("rows", "command_size", "data_size", "per_pdu"),
    [
        pytest.param(8, 1 << 20, 1 << 20, 2, id="whole message in one PDU"),
        pytest.param(8, 1 << 20, 1 << 20, 1, id="command and data set in a PDU each"),
        pytest.param(8, 3, 1, 5, id="one-byte data fragments, command in threes"),
        pytest.param(16, 7, 1001, 3, id="odd fragment sizes, several PDVs per PDU"),
        pytest.param(256, 1 << 20, 16378, 1, id="data set over 9 PDUs of 16 KB"),
        pytest.param(512, 1 << 20, 4089, 7, id="data set over 65 PDUs of 7 odd PDVs"),
    ],
)
def test_a_store_request_cut_any_way_is_stored_as_sent(
    local: LocalDimse,
    store_assoc: Association,
    rows: int,
    command_size: int,
    data_size: int,
    per_pdu: int,
) -> None:
    part10 = make_instance(rows=rows, columns=rows)
    data_set = dataset_part(part10)
    context_id = _context_id(store_assoc, CTImageStorage, ExplicitVRLittleEndian)
    pdvs = _message(_store_command(part10), data_set, context_id, command_size, data_size)
    (response,) = _send_raw(store_assoc, _pdus(pdvs, per_pdu), 1)
    assert response.Status == 0x0000
    stored = local.stored(part10)
    assert dataset_part(stored) == data_set
    meta = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
    sent = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    assert meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_a_deflated_data_set_in_odd_fragments_is_stored_as_sent(
    local: LocalDimse, store_assoc: Association
) -> None:
    part10 = (PYDICOM_DATA / "image_dfl.dcm").read_bytes()
    sent = pydicom.dcmread(io.BytesIO(part10), stop_before_pixels=True)
    assert sent.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    context_id = _context_id(store_assoc, sent.SOPClassUID, DeflatedExplicitVRLittleEndian)
    data_set = dataset_part(part10)
    pdvs = _message(_store_command(part10), data_set, context_id, 5, 333)
    (response,) = _send_raw(store_assoc, _pdus(pdvs, 4), 1)
    assert response.Status == 0x0000
    assert dataset_part(local.stored(part10)) == data_set


def test_a_pdu_may_end_one_request_and_hold_the_next(
    local: LocalDimse, store_assoc: Association
) -> None:
    first, second = make_instance(), make_instance()
    context_id = _context_id(store_assoc, CTImageStorage, ExplicitVRLittleEndian)
    pdvs = _message(_store_command(first, 1), dataset_part(first), context_id, 1 << 20, 100)
    pdvs += _message(_store_command(second, 2), dataset_part(second), context_id, 1 << 20, 1 << 20)
    # the first request's last fragment shares its PDU with the whole second request
    responses = _send_raw(store_assoc, _pdus(pdvs[:-3], 1) + _pdus(pdvs[-3:], 3), 2)
    assert [(r.MessageIDBeingRespondedTo, r.Status) for r in responses] == [(1, 0), (2, 0)]
    assert dataset_part(local.stored(first)) == dataset_part(first)
    assert dataset_part(local.stored(second)) == dataset_part(second)


def test_a_pdu_header_split_across_tcp_segments_is_waited_for(
    local: LocalDimse, store_assoc: Association
) -> None:
    part10 = make_instance(rows=64, columns=64)
    context_id = _context_id(store_assoc, CTImageStorage, ExplicitVRLittleEndian)
    pdus = _pdus(_message(_store_command(part10), dataset_part(part10), context_id, 40, 3000), 1)
    raw = store_assoc.dul.socket.socket if store_assoc.dul.socket else None
    assert raw is not None
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    second_pdu = 6 + struct.unpack_from(">L", pdus, 2)[0]
    store_assoc._reactor_checkpoint.clear()
    wait_until(lambda: store_assoc._is_paused, 10, interval=0.0005)
    try:
        raw.sendall(pdus[: second_pdu + 3])  # the next PDU's header stops after 3 bytes
        time.sleep(0.05)  # long enough for the listener to find the socket readable
        raw.sendall(pdus[second_pdu + 3 :])
        response = store_assoc.dimse.get_msg(block=True)[1]
    finally:
        store_assoc._reactor_checkpoint.set()
    assert response.Status == 0x0000
    assert dataset_part(local.stored(part10)) == dataset_part(part10)


def test_an_unknown_pdu_type_aborts_the_association(store_assoc: Association) -> None:
    assert store_assoc.dul.socket is not None and store_assoc.dul.socket.socket is not None
    store_assoc.dul.socket.socket.sendall(struct.pack(">BBL", 0x09, 0, 2) + b"\0\0")
    wait_until(lambda: store_assoc.is_aborted, 10, message="the association was not aborted")


def test_other_messages_in_fragments_reach_pynetdicom(store_assoc: Association) -> None:
    echo = C_ECHO()
    echo.MessageID = 5
    echo.AffectedSOPClassUID = Verification
    context_id = _context_id(store_assoc, Verification, "1.2.840.10008.1.2")
    pdvs = _message(_command(echo, C_ECHO_RQ), None, context_id, 9, 0)
    assert len(pdvs) > 3
    (response,) = _send_raw(store_assoc, _pdus(pdvs, 2), 1)
    assert isinstance(response, C_ECHO)
    assert (response.MessageIDBeingRespondedTo, response.Status) == (5, 0x0000)


def test_a_malformed_pdv_list_aborts_the_association(
    local: LocalDimse, store_assoc: Association
) -> None:
    part10 = make_instance()
    context_id = _context_id(store_assoc, CTImageStorage, ExplicitVRLittleEndian)
    pdu = bytearray(_pdus(_message(_store_command(part10), b"", context_id, 1 << 20, 1), 1))
    struct.pack_into(">L", pdu, 6, len(pdu))  # the PDV claims more bytes than its PDU holds
    assert store_assoc.dul.socket is not None and store_assoc.dul.socket.socket is not None
    store_assoc.dul.socket.socket.sendall(bytes(pdu))
    wait_until(lambda: store_assoc.is_aborted, 10, message="the association was not aborted")
    assert not local.holds(str(pydicom.dcmread(io.BytesIO(part10)).SOPInstanceUID))


def test_store_request_commands_are_read_as_pynetdicom_reads_them() -> None:
    part10 = make_instance()
    command = _store_command(
        part10, 9, MoveOriginatorApplicationEntityTitle="MOVESCU", MoveOriginatorMessageID=4
    )
    values = decode_store_request(command)
    assert values is not None
    expected = decode(io.BytesIO(command), True, True)
    for element in expected:
        assert values[element.keyword] == element.value, element.keyword
    unknown = struct.pack("<HHL", 0x0000, 0x0901, 2) + b"\x01\x00"  # OffendingElement
    assert decode_store_request(command + unknown) is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"AffectedSOPInstanceUID": "1." + "2" * 64}, id="a UID over 64 characters"),
        pytest.param({"MoveOriginatorApplicationEntityTitle": "ÉCHO"}, id="non-ASCII AE title"),
        pytest.param({"DataSet": None}, id="no data set"),
    ],
)
def test_an_unusual_store_command_is_left_to_pynetdicom(change: dict[str, Any]) -> None:
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = generate_uid()
    request.DataSet = io.BytesIO(b"\0")
    for keyword, value in change.items():
        if keyword == "AffectedSOPInstanceUID":
            request._affected_sop_instance_uid = value  # past the setter's check
        elif keyword == "MoveOriginatorApplicationEntityTitle":
            request._move_originator_application_entity_title = value
        else:
            setattr(request, keyword, value)
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    command = bytes(encode(message.command_set, True, True))
    assert decode_store_request(command) is None


def _find_command(message_id: int = 3, **extra: Any) -> bytes:
    request = C_FIND()
    request.MessageID = message_id
    request.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelFind
    request.Priority = 2
    for keyword, value in extra.items():
        setattr(request, keyword, value)
    request.Identifier = io.BytesIO(b"\0")  # only its presence counts
    return _command(request, C_FIND_RQ)


def test_find_request_commands_are_read_as_pynetdicom_reads_them() -> None:
    command = _find_command(11, Priority=1)
    values = decode_find_request(command)
    assert values is not None
    for element in decode(io.BytesIO(command), True, True):
        assert values[element.keyword] == element.value, element.keyword
    assert decode_store_request(command) is None
    assert decode_find_request(_store_command(make_instance())) is None
    unknown = struct.pack("<HHL", 0x0000, 0x0901, 2) + b"\x01\x00"  # OffendingElement
    assert decode_find_request(command + unknown) is None


@pytest.mark.parametrize(
    ("command_size", "data_size", "per_pdu"),
    [
        pytest.param(1 << 20, 1 << 20, 2, id="whole request in one PDU"),
        pytest.param(5, 1, 3, id="one-byte identifier fragments, command in fives"),
    ],
)
def test_a_find_request_cut_any_way_is_answered(
    local: LocalDimse,
    monkeypatch: pytest.MonkeyPatch,
    command_size: int,
    data_size: int,
    per_pdu: int,
) -> None:
    """A C-FIND request assembled here gets the answers pynetdicom's path gives: pending
    identifiers with the match, then success, for the message it named."""
    assembled: list[Any] = []
    made = receive.find_request
    monkeypatch.setattr(receive, "find_request", lambda *a: assembled.append(a) or made(*a))
    local.archive.store_many([make_instance(PatientID="FIND-CUT", PatientName="Cut^Find")])
    assoc = associate(local.port, (StudyRootQueryRetrieveInformationModelFind, [ImplicitVRLE]))
    try:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.PatientID = "FIND-CUT"
        identifier.PatientName = ""
        context_id = _context_id(assoc, StudyRootQueryRetrieveInformationModelFind, ImplicitVRLE)
        data = bytes(encode(identifier, True, True))
        pdvs = _message(_find_command(7), data, context_id, command_size, data_size)
        pending, final = _send_raw(assoc, _pdus(pdvs, per_pdu), 2)
    finally:
        assoc.release()
    assert isinstance(pending, C_FIND) and isinstance(final, C_FIND)
    assert (pending.MessageIDBeingRespondedTo, pending.Status) == (7, 0xFF00)
    assert pending.Identifier is not None
    answer = decode(pending.Identifier, True, True)
    assert (answer.PatientID, str(answer.PatientName)) == ("FIND-CUT", "Cut^Find")
    assert (final.MessageIDBeingRespondedTo, final.Status) == (7, 0x0000)
    assert len(assembled) == 1  # read here, not by pynetdicom
