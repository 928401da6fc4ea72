"""DIMSE messages written directly (:mod:`klinika.dimse.direct`): byte for byte what
pynetdicom would send, and the P-DATA framing a DCMTK peer reads (the retrieve tests send
through it against DCMTK and pynetdicom peers)."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time

import pytest
from pydicom.uid import generate_uid
from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from klinika.dimse import direct
from klinika.dimse.direct import encode_command, frame
from klinika.dimse.receive import decode_store_response
from tests.conftest import wait_until
from tests.dimse.conftest import LocalDimse, associate


def _store_request() -> C_STORE:
    request = C_STORE()
    request.MessageID = 7
    request.Priority = 2
    request.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    request.AffectedSOPInstanceUID = generate_uid()
    request.MoveOriginatorApplicationEntityTitle = "MOVESCU"
    request.MoveOriginatorMessageID = 3
    request.DataSet = io.BytesIO(b"\x08\x00\x16\x00\x00\x00\x00\x00")
    return request


def _get_pending() -> C_GET:
    response = C_GET()
    response.MessageIDBeingRespondedTo = 5
    response.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.3"
    response.Status = 0xFF00
    response.NumberOfRemainingSuboperations = 249
    response.NumberOfCompletedSuboperations = 1
    response.NumberOfFailedSuboperations = 0
    response.NumberOfWarningSuboperations = 0
    return response


def _store_response() -> C_STORE:
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 9
    response.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    response.AffectedSOPInstanceUID = "1.2.3.4.5"
    response.Status = 0
    return response


def _find_response() -> C_FIND:
    response = C_FIND()
    response.MessageIDBeingRespondedTo = 2
    response.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    response.Status = 0xFF00
    response.Identifier = io.BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    return response


def _move_final() -> C_MOVE:
    response = C_MOVE()
    response.MessageIDBeingRespondedTo = 4
    response.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    response.Status = 0xA702
    response.NumberOfCompletedSuboperations = 2
    response.NumberOfFailedSuboperations = 1
    response.NumberOfWarningSuboperations = 0
    response.NumberOfRemainingSuboperations = 0
    response.ErrorComment = "out of resources"
    return response


def _echo_response() -> C_ECHO:
    response = C_ECHO()
    response.MessageIDBeingRespondedTo = 1
    response.AffectedSOPClassUID = "1.2.840.10008.1.1"
    response.Status = 0
    return response


@pytest.mark.parametrize(
    "build",
    [_store_request, _get_pending, _store_response, _find_response, _move_final, _echo_response],
)
def test_command_sets_are_encoded_as_pynetdicom_encodes_them(build: object) -> None:
    primitive = build()  # type: ignore[operator]
    table = _RQ_TO_MESSAGE if primitive.MessageIDBeingRespondedTo is None else _RSP_TO_MESSAGE
    message = table[type(primitive)]()
    message.primitive_to_message(primitive)
    expected = encode(message.command_set, True, True)
    fast = encode_command(primitive, type(message).__name__)
    assert fast is not None
    encoded, command = fast
    assert encoded == expected
    assert command.CommandField == message.command_set.CommandField
    assert getattr(command, "Status", None) == message.command_set.get("Status")


def test_a_value_pydicom_must_encode_is_left_to_it() -> None:
    response = _move_final()
    response.ErrorComment = "нет места"  # not ASCII: pydicom's character set handling
    assert encode_command(response, "C_MOVE_RSP") is None


def test_framing_follows_the_peers_maximum_pdu_length() -> None:
    payload = bytes(range(256)) * 100  # 25,600 bytes
    pieces = frame(payload, 5, 0x02, 16384)
    wire = b"".join(pieces)
    fragments, offset = [], 0
    while offset < len(wire):
        kind, _, pdu_length, pdv_length, context, header = struct.unpack_from(
            ">BBLLBB", wire, offset
        )
        assert (kind, context) == (4, 5)
        assert pdu_length == pdv_length + 4 and pdu_length + 6 <= 16384 + 6
        fragments.append((header, wire[offset + 12 : offset + 6 + pdu_length]))
        offset += 6 + pdu_length
    assert [header for header, _ in fragments] == [0x00, 0x02]
    assert b"".join(data for _, data in fragments) == payload
    assert len(b"".join(frame(payload, 1, 0x03, 0))) == len(payload) + 12  # unlimited: one PDU


def test_gathered_writes_send_every_piece_in_order_through_a_small_socket_buffer() -> None:
    """A 3 MB data set framed in 16 KB PDUs leaves in short writes (a 4 KB send buffer and a
    slow reader): every byte arrives once and in order, the blob's bytes never joined."""
    blob = bytes(range(256)) * 12_288  # 3 MB, as a blob is read
    data_set = direct.EncodedDataSet(memoryview(blob)[128:])  # past the header, no copy
    assert data_set.getvalue() == blob[128:]
    with data_set.getbuffer() as body:
        pieces = frame(body, 3, 0x02, 16384)
        expected = b"".join(pieces)
        sender, receiver = socket.socketpair()
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sender.settimeout(30)
        received = bytearray()

        def read_slowly() -> None:
            while chunk := receiver.recv(1000):
                received.extend(chunk)
                time.sleep(0.0001)

        reader = threading.Thread(target=read_slowly)
        reader.start()
        direct._send_pieces(sender, pieces)
        sender.close()
        reader.join(30)
        receiver.close()
    assert len(pieces) > 2 * 190
    assert bytes(received) == expected


def test_a_store_response_is_read_as_pynetdicom_reads_it() -> None:
    response = _store_response()
    response.Status = 0xB000
    encoded, _ = encode_command(response, "C_STORE_RSP") or (b"", None)
    decoded = decode_store_response(encoded)
    assert decoded is not None
    primitive, command = decoded
    message = _RSP_TO_MESSAGE[C_STORE]()
    message.primitive_to_message(response)
    assert encode(message.command_set, True, True) == encoded
    for keyword in ("MessageIDBeingRespondedTo", "Status", "AffectedSOPClassUID"):
        assert getattr(primitive, keyword) == getattr(response, keyword)
    assert primitive.AffectedSOPInstanceUID == "1.2.3.4.5"
    assert command.Status == 0xB000 and primitive.is_valid_response


def test_a_store_response_with_more_is_left_to_pynetdicom() -> None:
    response = _store_response()
    response.Status = 0xA700
    response.ErrorComment = "disk full"
    encoded, _ = encode_command(response, "C_STORE_RSP") or (b"", None)
    assert encoded and decode_store_response(encoded) is None
    assert decode_store_response(encoded[:-3]) is None  # truncated


def test_the_reactor_waits_for_requests_and_for_a_release_or_abort(
    local: LocalDimse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptor's reactor waits on its message queue instead of polling it every 1 ms:
    with a wait far longer than the test, a request, a release and an abort each end the
    wait at once."""
    monkeypatch.setattr(direct, "_REACTOR_WAIT", 20.0)
    assoc = associate(local.port, Verification)
    (server_side,) = wait_until(lambda: list(local.listener.server.active_associations))
    assert isinstance(server_side.dimse, direct.DirectDimse)
    for _ in range(3):
        started = time.monotonic()
        assert assoc.send_c_echo().Status == 0x0000
        assert time.monotonic() - started < 5.0
    started = time.monotonic()
    assoc.release()
    assert assoc.is_released and time.monotonic() - started < 5.0
    wait_until(lambda: not server_side.is_alive(), 5.0, message="the reactor kept waiting")

    aborted = associate(local.port, Verification)
    (server_side,) = wait_until(lambda: list(local.listener.server.active_associations))
    aborted.abort()
    wait_until(lambda: not server_side.is_alive(), 5.0, message="the reactor kept waiting")
    assert server_side.is_aborted


def test_the_reactor_does_not_nap_before_each_request(
    local: LocalDimse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pynetdicom's reactor sleeps 1 ms at the start of every round; ours goes straight to
    its wait for the next message, so a peer's back-to-back requests are not held up."""
    naps: list[threading.Thread] = []
    sleep = time.sleep

    def counted(seconds: float) -> None:
        if seconds == 0.001:
            naps.append(threading.current_thread())
        sleep(seconds)

    assoc = associate(local.port, Verification)
    (server_side,) = wait_until(lambda: list(local.listener.server.active_associations))
    monkeypatch.setattr(time, "sleep", counted)
    for _ in range(20):
        assert assoc.send_c_echo().Status == 0x0000
    monkeypatch.setattr(time, "sleep", sleep)
    assoc.release()
    assert server_side not in naps


def test_a_paused_reactor_leaves_the_response_to_the_sender(local: LocalDimse) -> None:
    """pynetdicom's pause race (issue #875): the reactor marks itself paused, passes its
    checkpoint, and only then is the checkpoint cleared by a sender whose response arrives
    before the reactor looks at the queue. The guarded reactor leaves that response where
    the sender will read it."""
    assoc = associate(local.port, Verification)
    response = C_ECHO()
    response.MessageIDBeingRespondedTo = 1
    response.Status = 0x0000
    looked = threading.Event()

    class SenderClearsLate(threading.Event):
        """The checkpoint, cleared (and the response queued) just after the reactor passed it."""

        armed = True

        def wait(self, timeout: float | None = None) -> bool:
            passed = super().wait(timeout)
            if self.armed:
                self.armed = False
                self.clear()
                assoc.dimse.msg_queue.put((1, response))
                looked.set()
            return passed

    checkpoint = SenderClearsLate()
    checkpoint.set()
    assoc._reactor_checkpoint = checkpoint
    assert looked.wait(5.0)
    wait_until(lambda: assoc._is_paused, 5.0, message="the reactor did not pause")
    assert assoc.dimse.get_msg(block=True) == (1, response)  # the sender's, untouched
    checkpoint.set()
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
