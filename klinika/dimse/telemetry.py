"""DIMSE metrics and the DIMSE access log, from pynetdicom's notification events.

Bound once, in :func:`klinika.dimse.server.start_dimse_server`'s handler list
(:func:`telemetry_handlers`). Each association gets a short id when its connection opens; the
association's thread is tagged with it, so every record logged while serving it carries
``association_id``. One access line is written when the connection closes (calling and called
AE, peer, result, duration, operations by status), and one warning per failed operation.
No data set is read: statuses come from the response command sets.

References
----------
PS3.7 9.1 (DIMSE message command sets: MessageID, MessageIDBeingRespondedTo, Status),
PS3.7 Annex C (status classes).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import evt
from pynetdicom.status import code_to_category

from klinika.observability import DIMSE_ACCESS, Metrics
from klinika.observability.logs import tag_thread

access_log = logging.getLogger(DIMSE_ACCESS)

#: pynetdicom's category names → our status label; Pending responses are not final.
_CATEGORIES = {"Success": "success", "Warning": "warning", "Failure": "failure", "Cancel": "cancel"}


@dataclass
class _Association:
    id: str
    opened: float
    peer: str
    calling_ae: str = ""
    called_ae: str = ""
    requested: bool = False  # an A-ASSOCIATE-RQ arrived (not a bare TCP probe)
    result: str = "closed"  # accepted, rejected, aborted; "closed" before negotiation
    requests: dict[int, tuple[str, float]] = field(default_factory=dict)
    operations: Counter[tuple[str, str]] = field(default_factory=Counter)


def _operation(message: Any) -> str:
    """``C-STORE`` from pynetdicom's ``C_STORE_RQ`` / ``C_STORE_RSP`` message classes."""
    return type(message).__name__.rsplit("_", 1)[0].replace("_", "-")


class DimseTelemetry:
    """The event handlers; one instance per listener."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._open: dict[int, _Association] = {}
        self._lock = threading.Lock()

    def _state(self, event: evt.Event) -> _Association | None:
        with self._lock:
            return self._open.get(id(event.assoc))

    def opened(self, event: evt.Event) -> None:
        address = event.address  # type: ignore[attr-defined]  # EVT_CONN_OPEN's (host, port)
        state = _Association(uuid.uuid4().hex[:12], time.monotonic(), f"{address[0]}:{address[1]}")
        with self._lock:
            self._open[id(event.assoc)] = state
        tag_thread(event.assoc, state.id)  # a pynetdicom Association is its own thread

    def requested(self, event: evt.Event) -> None:
        calling, called = event.assoc.requestor.ae_title, event.assoc.acceptor.ae_title
        with self._lock:
            state = self._open.get(id(event.assoc))
            if state is not None:
                state.requested = True
                state.calling_ae, state.called_ae = calling, called
                return
        # Gone already: the admission handler, bound before us, refused the association
        # (A-ASSOCIATE-RJ) and its connection closed before this handler ran.
        self.metrics.dimse_associations.labels("rejected").inc()
        address = event.assoc.requestor.address
        access_log.info(
            "association %s %s → %s rejected",
            calling,
            address,
            called,
            extra={
                "calling_ae": calling,
                "called_ae": called,
                "user": calling,
                "peer": address,
                "result": "rejected",
                "status": "rejected",
            },
        )

    def negotiated(self, event: evt.Event) -> None:
        state = self._state(event)
        if state is None:
            return
        accepted = event.event is evt.EVT_ACCEPTED
        state.result = "accepted" if accepted else "rejected"
        requestor = event.assoc.requestor
        state.calling_ae, state.called_ae = requestor.ae_title, event.assoc.acceptor.ae_title
        self.metrics.dimse_associations.labels(state.result).inc()
        if accepted:
            self.metrics.dimse_active.inc()

    def aborted(self, event: evt.Event) -> None:
        state = self._state(event)
        if state is not None and state.result == "accepted":
            state.result = "aborted"
            self.metrics.dimse_associations.labels("aborted").inc()

    def received(self, event: evt.Event) -> None:
        """A request arrived: remember when, by message id (responses to our own requests,
        e.g. C-STORE sub-operations of a C-GET, are not ours to time)."""
        message, state = event.message, self._state(event)
        name = type(message).__name__
        if state is None or not name.endswith("_RQ"):
            return
        message_id = getattr(message.command_set, "MessageID", None)
        if isinstance(message_id, int):
            state.requests[message_id] = (_operation(message), time.monotonic())

    def sent(self, event: evt.Event) -> None:
        """A response left: count the final one of each request by its status class."""
        message, state = event.message, self._state(event)
        if state is None or not type(message).__name__.endswith("_RSP"):
            return
        command = message.command_set
        status = getattr(command, "Status", None)
        if not isinstance(status, int):
            return
        category = _CATEGORIES.get(code_to_category(status))
        if category is None:  # pending: more responses follow
            return
        operation = _operation(message)
        request = state.requests.pop(getattr(command, "MessageIDBeingRespondedTo", -1), None)
        self.metrics.dimse_operations.labels(operation, category).inc()
        if request is not None:
            self.metrics.dimse_duration.labels(operation).observe(time.monotonic() - request[1])
        state.operations[(operation, category)] += 1
        if category == "failure":
            access_log.warning(
                "%s from %s failed: status 0x%04X",
                operation,
                state.calling_ae,
                status,
                extra={
                    "association_id": state.id,
                    "operation": operation,
                    "status": f"0x{status:04X}",
                    "calling_ae": state.calling_ae,
                    "peer": state.peer,
                },
            )

    def closed(self, event: evt.Event) -> None:
        with self._lock:
            state = self._open.pop(id(event.assoc), None)
        if state is None:
            return
        if state.result in ("accepted", "aborted"):
            self.metrics.dimse_active.dec()
        elif state.result == "closed" and state.requested:
            # refused during negotiation without EVT_REJECTED
            state.result = "rejected"
            self.metrics.dimse_associations.labels("rejected").inc()
        elif not state.requested:
            # a TCP probe (a health check), or refused before our EVT_REQUESTED handler ran
            # (which then counts it): no association to log here
            return
        seconds = time.monotonic() - state.opened
        operations: dict[str, dict[str, int]] = {}
        for (operation, category), count in sorted(state.operations.items()):
            operations.setdefault(operation, {})[category] = count
        summary = ", ".join(
            f"{operation} {'/'.join(f'{n} {c}' for c, n in counts.items())}"
            for operation, counts in operations.items()
        )
        access_log.info(
            "association %s %s → %s %s in %.1f s%s",
            state.calling_ae or "?",
            state.peer,
            state.called_ae or "?",
            state.result,
            seconds,
            f": {summary}" if summary else "",
            extra={
                "association_id": state.id,
                "calling_ae": state.calling_ae,
                "called_ae": state.called_ae,
                "user": state.calling_ae,  # a DICOM peer is known by its AE title
                "peer": state.peer,
                "result": state.result,
                "status": state.result,
                "duration_ms": round(seconds * 1000, 1),
                "operations": operations,
            },
        )


def telemetry_handlers(metrics: Metrics) -> list[tuple[evt.EventType, Any]]:
    """The ``(event, handler)`` pairs to bind on the listener."""
    telemetry = DimseTelemetry(metrics)
    return [
        (evt.EVT_CONN_OPEN, telemetry.opened),
        (evt.EVT_REQUESTED, telemetry.requested),
        (evt.EVT_ACCEPTED, telemetry.negotiated),
        (evt.EVT_REJECTED, telemetry.negotiated),
        (evt.EVT_ABORTED, telemetry.aborted),
        (evt.EVT_DIMSE_RECV, telemetry.received),
        (evt.EVT_DIMSE_SENT, telemetry.sent),
        (evt.EVT_CONN_CLOSE, telemetry.closed),
    ]
