"""The one logging setup of every Klinika process: text or JSON lines, ids, rotation.

Every process (``klinika serve``, each HTTP worker, ``klinika dimse``, jobs such as
``klinika backup``) calls :func:`configure_logging` once at start. Records carry the HTTP
request id (a context variable set by the HTTP middleware) and the DIMSE association id (a tag
on the association's thread, set by the DIMSE event handlers), so one request or association
can be followed through every line it caused.

Patient data stays out by default: the access logs write paths without query strings (QIDO
queries name patients) and pynetdicom, whose debug output dumps data sets, is held at WARNING.

Several processes never share one file: each claims the first free *slot* (``klinika.log``,
then ``klinika-1.log``, ``klinika-2.log``…) by holding an exclusive ``flock`` on the slot's
``.lock`` file for its lifetime, and rotates only its own file (stdlib
:class:`~logging.handlers.RotatingFileHandler`). A restarted worker takes a freed slot again,
so the set of files stays small and rotation never races another writer.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import fcntl
import json
import logging
import logging.handlers
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import IO, Any

from klinika.config import Settings

#: The access logs: one line per HTTP request, one per DIMSE association (and failed operation).
HTTP_ACCESS = "klinika.access.http"
DIMSE_ACCESS = "klinika.access.dimse"

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "klinika_request_id", default=None
)
_THREAD_TAG = "klinika_association_id"
_MAX_SLOTS = 64
_INSTALLED = "_klinika_handler"

# Attributes every LogRecord has; anything else on a record is an ``extra`` field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "association_id",
}


def new_request_id() -> str:
    """A fresh request id: 32 hex digits (a UUID4 without dashes)."""
    return uuid.uuid4().hex


def request_id() -> str | None:
    """The id of the HTTP request being served in this context, if any."""
    return _REQUEST_ID.get()


def bind_request_id(value: str | None) -> contextvars.Token[str | None]:
    """Set the request id of the current context (reset with the returned token)."""
    return _REQUEST_ID.set(value)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _REQUEST_ID.reset(token)


def tag_thread(thread: threading.Thread, association: str) -> None:
    """Mark ``thread`` (a pynetdicom association is a thread) with its association id, so
    records logged in it carry that id."""
    setattr(thread, _THREAD_TAG, association)


def association_id() -> str | None:
    """The DIMSE association id of the current thread, if it serves one."""
    value = getattr(threading.current_thread(), _THREAD_TAG, None)
    return value if isinstance(value, str) else None


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``association_id`` to every record (None when outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id()
        if getattr(record, "association_id", None) is None:
            record.association_id = association_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``pid``, the ids when set, every ``extra`` field, and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in ("request_id", "association_id"):
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [request or association id]: message`` for people reading a
    terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            str(value)
            for value in (
                getattr(record, "request_id", None),
                getattr(record, "association_id", None),
            )
            if value
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def claim_log_file(path: Path) -> tuple[Path, int]:
    """The first slot of ``path`` no other live process holds, and the open lock descriptor
    that holds it (keep it open for the life of the process).

    Raises
    ------
    OSError
        When every slot is taken or the folder cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for slot in range(_MAX_SLOTS):
        name = path if slot == 0 else path.with_name(f"{path.stem}-{slot}{path.suffix}")
        descriptor = os.open(f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        return name, descriptor
    raise OSError(f"all {_MAX_SLOTS} log file slots of {path} are taken")


class SlotRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A :class:`RotatingFileHandler` on this process's own slot of ``path``."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        name, self._lock_descriptor = claim_log_file(path)
        super().__init__(name, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def format(self, record: logging.LogRecord) -> str:
        # shouldRollover() formats each record to measure it, then emit() formats it again:
        # format once per record.
        cached = getattr(record, "_klinika_line", None)
        if cached is not None and cached[0] is self:
            return str(cached[1])
        line = super().format(record)
        record._klinika_line = (self, line)
        return line

    def close(self) -> None:
        super().close()
        if self._lock_descriptor >= 0:
            os.close(self._lock_descriptor)
            self._lock_descriptor = -1


def _stream(name: str) -> IO[str] | None:
    return {"stderr": sys.stderr, "stdout": sys.stdout}.get(name)


def configure_logging(settings: Settings) -> None:
    """Install the handlers of this process on the root logger (replacing ours from an earlier
    call): the console stream (``log_stream``: stderr, stdout or none) and, with
    ``log_file``, this process's rotating file. Both get the same format (``log_format``)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else TextFormatter()
    )
    handlers: list[logging.Handler] = []
    stream = _stream(settings.log_stream)
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
    if settings.log_file is not None:
        handlers.append(
            SlotRotatingFileHandler(settings.log_file, settings.log_max_bytes, settings.log_backups)
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(ContextFilter())
        setattr(handler, _INSTALLED, True)
        root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # No caller lookup (file, line, function) for every record: our formats do not show it,
    # and it is the costliest step of a log call (the logging HOWTO's "Optimization").
    logging._srcfile = None
    # pynetdicom's INFO/DEBUG output names patients and dumps data sets
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl …" on every start
    logging.getLogger("uvicorn.access").disabled = True  # our access log replaces it
    logging.captureWarnings(True)
