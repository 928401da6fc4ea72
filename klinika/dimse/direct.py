"""DIMSE messages written to the socket in one call, not one DUL hand-off per P-DATA PDU.

pynetdicom cuts every message into P-DATA primitives of the peer's maximum PDU length and
queues each for its DUL thread, which wakes (it polls every 1 ms), runs the state machine,
builds a ``P_DATA_TF`` object, encodes it by concatenating bytes and sends it, copying the
rest of the buffer on every partial ``send``. A 512 KB CT slice to a DCMTK peer (16 KB PDUs)
is 33 such hops. Here the message is framed into P-DATA-TF PDUs (PS3.8 9.3.5) with
``struct`` and sent with one ``sendall`` from the thread that sends the message.

This is safe because the socket is full duplex (the DUL thread keeps reading from it) and
writes never interleave: every PDU the DUL thread writes goes through :meth:`DirectDul._send`
under the same lock, and a message is written directly only when every P-DATA queued for the
DUL thread before it is on the wire (so messages stay in order) and the association is
established (state Sta6). Otherwise, and on TLS sockets (an ``SSLSocket`` must not be read
and written from two threads), pynetdicom's own path is taken.

References
----------
PS3.8 9.3.5 (P-DATA-TF PDU), PS3.8 E.2 (message control header), PS3.7 6.3.1 (command set
encoded Implicit VR Little Endian).
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import select
import socket
import ssl
import struct
import threading
import time
import weakref
from typing import Any, cast

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pynetdicom import _config, evt
from pynetdicom import association as pynetdicom_association
from pynetdicom.association import Association
from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE, DIMSEServiceProvider
from pynetdicom.dimse_messages import (
    _COMMAND_SET_KEYWORDS,
    _DATASET_KEYWORDS,
    _MESSAGE_TYPES,
    C_STORE_RSP,
)
from pynetdicom.dsutils import encode
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket

from klinika.dimse.receive import Assembly, Command, decode_store_response, read_pdu

log = logging.getLogger(__name__)

#: PDU type 04H, reserved, PDU length; PDV item length, context ID, message control header.
_HEADER = struct.Struct(">BBLLBB")
#: Bytes of a PDV item counted in the peer's maximum PDU length besides its data.
_PDV_OVERHEAD = 6
#: How long a direct write waits for P-DATA queued earlier to leave (then pynetdicom's path).
_DRAIN_TIMEOUT = 5.0
#: Longest wait of an idle DUL thread in select() (pynetdicom's own loop sleeps 1 ms).
_IDLE_WAIT = 0.01
#: Longest wait of an association's reactor for the next request (pynetdicom's sleeps 1 ms
#: and polls); a request, a release or an abort from the peer ends the wait at once.
_REACTOR_WAIT = 0.01
#: Most buffers one ``sendmsg`` takes (Linux's IOV_MAX).
_IOV_MAX = 1024
#: Linux's TCP_QUICKACK (None elsewhere): see :meth:`WakingSocket.ready`.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
#: Message control headers (PS3.8 E.2): command or data set, last fragment or not.
_COMMAND, _COMMAND_LAST, _DATA, _DATA_LAST = 0x01, 0x03, 0x00, 0x02


_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
#: Command field of each message class (PS3.7 E.1).
_COMMAND_FIELDS = {cls.__name__: field for field, (_, cls) in _MESSAGE_TYPES.items()}


#: The command elements of each message class: (element number, VR, keyword) in tag order,
#: without the three we compute (group length, command field, data set type).
def _layout(keywords: tuple[str, ...]) -> list[tuple[int, str, str]]:
    layout = []
    for keyword in keywords:
        if keyword in ("CommandGroupLength", "CommandField", "CommandDataSetType"):
            continue
        tag = tag_for_keyword(keyword)
        assert tag is not None, keyword
        layout.append((tag & 0xFFFF, dictionary_VR(tag), keyword))
    return sorted(layout)


_LAYOUTS = {
    name.replace("-", "_"): _layout(keywords) for name, keywords in _COMMAND_SET_KEYWORDS.items()
}


def _value(vr: str, value: Any) -> bytes | None:
    """One command element's value, encoded and padded; None for what only pydicom should
    encode (multi-valued AT, non-ASCII text, anything unexpected)."""
    if vr == "US" and isinstance(value, int) and 0 <= value <= 0xFFFF:
        return _US.pack(value)
    if vr == "UL" and isinstance(value, int) and 0 <= value <= 0xFFFFFFFF:
        return _UL.pack(value)
    if vr in ("UI", "AE", "LO") and isinstance(value, str) and value.isascii():
        raw = value.encode()
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
        return raw
    return None


def encode_command(primitive: Any, message_name: str) -> tuple[bytes, Command] | None:
    """The command set of ``primitive`` sent as ``message_name`` (e.g. ``C_STORE_RQ``),
    encoded Implicit VR Little Endian with its group length (PS3.7 6.3.1, E.1): the bytes
    pynetdicom's ``primitive_to_message`` and pydicom would produce, or None when a value
    needs pydicom."""
    layout = _LAYOUTS.get(message_name)
    if layout is None:
        return None
    if getattr(primitive, "_dataset_path", None) is not None:  # a file to send: pynetdicom's
        return None
    dataset_keyword = _DATASET_KEYWORDS.get(message_name)
    data = getattr(primitive, dataset_keyword, None) if dataset_keyword else None
    if data is not None and not isinstance(data, io.BytesIO):
        return None
    has_data = data is not None  # as pynetdicom decides it, even for an empty one
    values: dict[str, Any] = {
        "CommandField": _COMMAND_FIELDS[message_name],
        "CommandDataSetType": 0x0001 if has_data else 0x0101,
    }
    elements: list[tuple[int, str, Any]] = [
        (0x0100, "US", values["CommandField"]),
        (0x0800, "US", values["CommandDataSetType"]),
    ]
    for element, vr, keyword in layout:
        value = getattr(primitive, keyword, None)
        if value is None:
            continue
        values[keyword] = value
        elements.append((element, vr, value))
    elements.sort(key=lambda item: item[0])
    body = []
    for element, vr, value in elements:
        encoded = _value(vr, value)
        if encoded is None:
            return None
        body.append(_ELEMENT.pack(0x0000, element, len(encoded)))
        body.append(encoded)
    content = b"".join(body)
    header = _ELEMENT.pack(0x0000, 0x0000, 4) + _UL.pack(len(content))
    values["CommandGroupLength"] = len(content)
    return header + content, Command(values)


def frame(payload: bytes | memoryview, context_id: int, last_flag: int, max_pdu: int) -> list[Any]:
    """``payload`` as P-DATA-TF PDUs of at most ``max_pdu`` bytes (0: one PDU), one PDV
    each: a list of header bytes and memoryview slices, in order."""
    view = memoryview(payload)
    size = len(view)
    step = size if max_pdu == 0 else max(1, max_pdu - _PDV_OVERHEAD)
    pieces: list[Any] = []
    start = 0
    while True:
        end = min(start + step, size)
        flag = last_flag if end >= size else last_flag & 0x01
        length = end - start + 2
        pieces.append(_HEADER.pack(0x04, 0, length + 4, length, context_id, flag))
        pieces.append(view[start:end])
        if end >= size:
            return pieces
        start = end


class DirectDul(DULServiceProvider):
    """pynetdicom's DUL thread, counting the P-DATA it is given and writing under a lock
    shared with :class:`DirectDimse` (state set by :func:`install`)."""

    klinika_write_lock: threading.Lock
    klinika_queued: int
    klinika_sent: int

    klinika_waker: socket.socket | None
    klinika_assembly: Assembly | None

    def _read_pdu_data(self) -> None:
        """PDUs on a plain socket are read by :func:`klinika.dimse.receive.read_pdu` (P-DATA
        taken apart there, the rest handed to pynetdicom's decoder); on TLS, by pynetdicom."""
        if self.klinika_assembly is None:
            super()._read_pdu_data()
        else:
            read_pdu(self, self.klinika_assembly)

    def send_pdu(self, primitive: Any) -> None:
        if isinstance(primitive, P_DATA):
            self.klinika_queued += 1
        super().send_pdu(primitive)
        self.klinika_wake_up()

    def klinika_wake_up(self) -> None:
        """Let the DUL thread's ``select`` return (see :class:`WakingSocket`)."""
        if self.klinika_waker is not None:
            with contextlib.suppress(OSError):  # closed, or full: it is awake anyway
                self.klinika_waker.send(b"!")

    def _send(self, pdu: Any) -> None:
        with self.klinika_write_lock:
            super()._send(pdu)
        if isinstance(pdu, P_DATA_TF):
            self.klinika_sent += 1


class WakingSocket(AssociationSocket):
    """The association's socket, whose ``ready`` (the DUL thread's poll) waits in ``select``
    for data or for a wake-up instead of returning at once: pynetdicom's DUL thread otherwise
    wakes every millisecond while idle, which costs CPU in every open association and up to
    a millisecond before each C-STORE response of a retrieve is seen. Anything queued for the
    DUL thread wakes it (:meth:`DirectDul.send_pdu`, :func:`_write`); a kill or a timer is
    noticed within ``_IDLE_WAIT``."""

    klinika_wake: socket.socket

    @property
    def ready(self) -> bool:
        if self.socket is None or self._is_connected is False:
            return False
        dul = self.assoc.dul
        idle = not dul.to_provider_queue.queue and not dul.event_queue.queue
        try:
            readable, _, _ = select.select(
                [self.socket, self.klinika_wake], [], [], _IDLE_WAIT if idle else 0
            )
        except (OSError, TimeoutError, ValueError):
            self.event_queue.put("Evt17")
            return False
        if self.klinika_wake in readable:
            with contextlib.suppress(OSError):
                self.klinika_wake.recv(4096)
        if self.socket not in readable:
            return False
        if _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return True


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """The DUL's queue of primitives for the user (release, abort, ...): putting one also
    ends the reactor's wait for a DIMSE message (:meth:`DirectDimse.get_msg`)."""

    klinika_messages: queue.Queue[Any]

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        with self.klinika_messages.not_empty:
            self.klinika_messages.not_empty.notify_all()


class PausableDimse(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider whose reactor leaves the message queue alone while a
    sender has paused it.

    pynetdicom's reactor marks itself paused *before* it looks at its checkpoint, so a
    thread that pauses it (to send a request and wait for the response) can see that stale
    mark, send, and have its response taken by the reactor, which logs "Received unexpected
    C-ECHO service message" and leaves the sender waiting for the DIMSE timeout (pynetdicom
    issue #875). Looking at the checkpoint again here, after the reactor has cleared the mark,
    closes the window: a sender that saw the mark cleared the checkpoint first.
    """

    def get_msg(self, block: bool = False) -> Any:
        if not block and self._reactor_paused():
            return None, None
        return super().get_msg(block)

    def _reactor_paused(self) -> bool:
        """Whether this is the reactor's look while a sender has paused it."""
        assoc = self.assoc
        return threading.current_thread() is assoc and not assoc._reactor_checkpoint.is_set()


def guard_reactor(assoc: Association) -> Association:
    """Close pynetdicom's pause race (:class:`PausableDimse`) on an association that does not
    write its messages directly, e.g. a test's plain pynetdicom requestor."""
    if not isinstance(assoc.dimse, PausableDimse):
        assoc.dimse.__class__ = PausableDimse
    return assoc


class DirectDimse(PausableDimse):
    """pynetdicom's DIMSE provider whose ``send_msg`` writes the framed message itself, and
    whose association reactor waits for the next message instead of polling for it."""

    def get_msg(self, block: bool = False) -> Any:
        """The next message; the reactor's non-blocking look waits for one (at most
        ``_REACTOR_WAIT``, or until the peer releases or aborts).

        pynetdicom's acceptor reactor sleeps 1 ms, then looks at the message queue, round
        after round: every request (each C-STORE of a stream, each C-FIND) is served up to a
        millisecond late, and an idle association wakes a thousand times a second. Only the
        reactor asks without blocking, and only while it is not paused (a thread that sends
        on the association pauses it first, then waits with ``block=True``), so this wait
        never takes another caller's response. Only an acceptor's reactor waits: a
        requestor's is paused for each request we send, and that pause would wait too.
        """
        assoc = self.assoc
        if block or not assoc.is_acceptor or threading.current_thread() is not assoc:
            return super().get_msg(block)
        messages = self.msg_queue
        with messages.not_empty:
            if not messages.queue and not self._reactor_paused():
                messages.not_empty.wait(_REACTOR_WAIT)
        if self._reactor_paused():
            return None, None
        try:
            return messages.get_nowait()
        except queue.Empty:
            return None, None

    def send_msg(self, primitive: Any, context_id: int) -> None:
        dul = self.dul
        raw = dul.socket.socket if dul.socket is not None else None
        if (
            not isinstance(dul, DirectDul)
            or raw is None
            or isinstance(raw, ssl.SSLSocket)
            or dul.state_machine.current_state != "Sta6"
            or not _drained(dul)
        ):
            super().send_msg(primitive, context_id)
            return
        if primitive.MessageIDBeingRespondedTo is None:
            message_class = _RQ_TO_MESSAGE[primitive.__class__]
        else:
            message_class = _RSP_TO_MESSAGE[primitive.__class__]
        max_pdu = self.maximum_pdu_size
        fast = (
            encode_command(primitive, message_class.__name__)
            if _config.LOG_HANDLER_LEVEL == "none"  # pynetdicom's own log handlers want more
            else None
        )
        if fast is not None:
            command, command_set = fast
            # What EVT_DIMSE_SENT handlers read: the class, the command set by keyword.
            message = message_class.__new__(message_class)
            message.command_set = command_set  # type: ignore[assignment]
            message.context_id = context_id
            dataset_keyword = _DATASET_KEYWORDS.get(message_class.__name__)
            message.data_set = getattr(primitive, dataset_keyword) if dataset_keyword else None
            evt.trigger(self.assoc, evt.EVT_DIMSE_SENT, {"message": message})
        else:
            message = message_class()
            message.primitive_to_message(primitive)
            message.context_id = context_id
            evt.trigger(self.assoc, evt.EVT_DIMSE_SENT, {"message": message})
            if getattr(message, "_data_set_path", None) is not None:  # a file given to send
                for pdata in message.encode_msg(context_id, max_pdu):
                    dul.send_pdu(pdata)
                return
            command = cast(bytes, encode(message.command_set, True, True))
        pieces = frame(command, context_id, _COMMAND_LAST, max_pdu)
        data_set = message.data_set
        if data_set is not None:
            with data_set.getbuffer() as body:
                if len(body):
                    pieces += frame(body, context_id, _DATA_LAST, max_pdu)
                    _write(dul, raw, pieces)
                    return
        _write(dul, raw, pieces)

    def receive_primitive(self, primitive: Any) -> None:
        """A C-STORE-RSP in one PDV (what a retrieve's sub-operations get back) is read
        without pydicom; every other message goes to pynetdicom."""
        items = primitive.presentation_data_value_list
        if self.message is None and len(items) == 1 and items[0][1][0] & 0x03 == 0x03:
            context_id, data = items[0]
            decoded = decode_store_response(memoryview(data)[1:])
            if decoded is not None:
                response, command_set = decoded
                message = C_STORE_RSP.__new__(C_STORE_RSP)
                message.command_set = command_set  # type: ignore[assignment]
                message.context_id = context_id
                message.data_set = None
                evt.trigger(self.assoc, evt.EVT_DIMSE_RECV, {"message": message})
                self.msg_queue.put((context_id, response))
                return
        super().receive_primitive(primitive)


def _drained(dul: DirectDul) -> bool:
    """Whether every P-DATA queued for the DUL thread has been written (waits a little)."""
    if dul.klinika_sent >= dul.klinika_queued:
        return True
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    while dul.klinika_sent < dul.klinika_queued:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)
    return True


class EncodedDataSet(io.BytesIO):
    """An encoded data set to send (a C-STORE's), over bytes that are not copied: a stored
    instance's data set is a view into the blob as read. :meth:`DirectDimse.send_msg`
    frames the view itself; pynetdicom's own path (TLS) gets a copy from ``getvalue``."""

    def __init__(self, payload: bytes | memoryview) -> None:
        super().__init__()
        self.klinika_payload = memoryview(payload)

    def getbuffer(self) -> memoryview:
        return memoryview(self.klinika_payload)

    def getvalue(self) -> bytes:
        return self.klinika_payload.tobytes()


def _send_pieces(raw: socket.socket, pieces: list[Any]) -> None:
    """Send ``pieces`` in order with gathering writes: a retrieve's 512 KB data set goes to
    the kernel straight from the blob's bytes instead of being joined into a copy first."""
    views = [memoryview(piece) for piece in pieces]
    first = 0
    while first < len(views):
        sent = raw.sendmsg(views[first : first + _IOV_MAX])
        while sent:
            size = len(views[first])
            if sent < size:
                views[first] = views[first][sent:]
                break
            sent -= size
            first += 1


def _write(dul: DirectDul, raw: Any, pieces: list[Any]) -> None:
    """Send ``pieces`` as one message; a broken connection is the DUL's to notice (Evt17)."""
    try:
        with dul.klinika_write_lock:
            _send_pieces(raw, pieces)
    except OSError:
        log.info("the connection closed while sending a DIMSE message")
        dul.event_queue.put("Evt17")
        dul.klinika_wake_up()


class _ReactorClock:
    """The ``time`` module as pynetdicom's association module sees it, except that the
    reactor of an acceptor whose DIMSE provider waits for its next message
    (:meth:`DirectDimse.get_msg`) skips the 1 ms nap that starts each of its rounds.

    pynetdicom's reactor sleeps 1 ms before it looks for a request, whatever it has just
    done: a peer that sends its next request as soon as it has the response (a storescu
    stream, echoscu, a workstation's queries) waits up to that millisecond every time.
    pynetdicom 3.0.4 (pinned) sleeps exactly 0.001 s there and nowhere else."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        if seconds == _REACTOR_NAP:
            thread = threading.current_thread()
            if (
                isinstance(thread, Association)
                and thread.is_acceptor
                and isinstance(thread.dimse, DirectDimse)
            ):
                return
        time.sleep(seconds)


#: The nap at the top of each round of pynetdicom's association reactor.
_REACTOR_NAP = 0.001
pynetdicom_association.time = _ReactorClock()  # type: ignore[attr-defined,assignment]


def install(assoc: Association) -> Association:
    """Make ``assoc`` send its DIMSE messages directly (idempotent). Call it before the
    association sends any P-DATA, e.g. on ``EVT_CONN_OPEN``."""
    dul = assoc.dul
    if not isinstance(dul, DirectDul):
        dul.klinika_write_lock = threading.Lock()  # type: ignore[attr-defined]
        dul.klinika_queued = 0  # type: ignore[attr-defined]
        dul.klinika_sent = 0  # type: ignore[attr-defined]
        dul.klinika_waker = None  # type: ignore[attr-defined]
        dul.klinika_assembly = None  # type: ignore[attr-defined]
        transport = dul.socket
        if transport is not None and not isinstance(transport.socket, ssl.SSLSocket):
            # TLS keeps pynetdicom's polling: an SSLSocket may hold data select() cannot see
            waker, wake = socket.socketpair()
            waker.setblocking(False)
            wake.setblocking(False)
            weakref.finalize(dul, waker.close)
            weakref.finalize(dul, wake.close)
            dul.klinika_waker = waker  # type: ignore[attr-defined]
            # a plain socket (select() sees all it holds) is read a PDU at a time
            dul.klinika_assembly = Assembly()  # type: ignore[attr-defined]
            transport.klinika_wake = wake  # type: ignore[attr-defined]
            transport.__class__ = WakingSocket
            dul._run_loop_delay = 0  # the wait is in WakingSocket.ready
        dul.__class__ = DirectDul
    if not isinstance(assoc.dimse, DirectDimse):
        assoc.dimse.__class__ = DirectDimse
        user_queue = dul.to_user_queue
        user_queue.klinika_messages = assoc.dimse.msg_queue  # type: ignore[attr-defined]
        user_queue.__class__ = _WakingQueue
    return assoc
