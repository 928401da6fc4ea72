"""Several DIMSE processes on one port: pre-forked workers sharing one listening socket.

One pynetdicom process runs one association's PDU handling and pydicom work at a time under
its GIL; with ``dimse_workers`` processes, concurrent associations use every core. The
parent binds the port once and forks the workers before it starts any thread; each worker
builds its own runtime (engines, caches, audit writer) and accepts from the shared socket
(:class:`klinika.dimse.server.SharedListenerServer`). The index serialises writers: SQLite's
lock (writers wait on ``busy_timeout``) or PostgreSQL's rows.

A worker that dies is started again; stopping the parent stops the workers (SIGTERM, and on
Linux the kernel sends it to them if the parent is killed).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import threading
import time
from types import FrameType

from klinika.config import Settings

log = logging.getLogger("klinika.dimse")
_PR_SET_PDEATHSIG = 1


class StopSignal:
    """A stop asked for by a signal, which the handler only notes: a flag, no lock.

    A ``threading.Event`` set from a signal handler can deadlock: the handler runs in the
    main thread between two bytecodes, possibly while that thread's own ``Event.wait`` holds
    the event's lock, and ``set`` then waits for that lock forever (a DIMSE worker that got
    SIGTERM hung so, holding the DIMSE port after its parent was killed).
    """

    def __init__(self, *signals: signal.Signals) -> None:
        self.requested = False
        for signum in signals:
            signal.signal(signum, self._note)

    def _note(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, ending within a tenth of a second of a request; whether
        a stop was requested."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(0.1, left))
        return self.requested


class DimseProcesses:
    """The DIMSE worker processes of one installation (``start`` forks; call it before this
    process starts threads)."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.pids: set[int] = set()
        self._listener: socket.socket | None = None
        self._tls_listener: socket.socket | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        from klinika.dimse.server import listening_socket

        self._listener = listening_socket(self.settings.dimse_host, self.settings.dimse_port)
        if self.settings.dimse_tls_cert and self.settings.dimse_tls_key:
            self._tls_listener = listening_socket(
                self.settings.dimse_host, self.settings.dimse_tls_port
            )
        for _ in range(self.count):
            self._fork()
        log.info(
            "DIMSE %s listening on %s:%d with %d processes",
            self.settings.ae_title,
            self.settings.dimse_host,
            self.port,
            self.count,
        )

    def _fork(self) -> None:
        assert self._listener is not None
        pid = os.fork()
        if pid == 0:  # the worker never returns
            code = 1
            try:
                _worker(self.settings, self._listener, self._tls_listener)
                code = 0
            except BaseException:
                log.exception("DIMSE worker %d failed", os.getpid())
            finally:
                os._exit(code)
        self.pids.add(pid)

    def reap(self) -> None:
        """Start a worker again for each one that ended (unless stopping)."""
        for pid in list(self.pids):
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
                self.pids.discard(pid)
                if not self._stopping:
                    log.error("DIMSE worker %d ended (status %d); starting another", pid, status)
                    time.sleep(1)
                    self._fork()

    def supervise_in_background(self) -> threading.Thread:
        """Reap and restart workers from a thread (for ``klinika serve``)."""

        def loop() -> None:
            while not self._stopping:
                self.reap()
                time.sleep(1)

        thread = threading.Thread(target=loop, name="dimse-supervisor", daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every worker and wait for it (SIGKILL after ``timeout``)."""
        self._stopping = True
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in list(self.pids):
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        self.pids.clear()
        for listener in (self._listener, self._tls_listener):
            if listener is not None:
                listener.close()


def _worker(
    settings: Settings, listener: socket.socket, tls_listener: socket.socket | None
) -> None:
    """One DIMSE process: its own runtime and AE on the shared socket, until SIGTERM."""
    from klinika.dimse import start_dimse_server
    from klinika.observability import configure_logging
    from klinika.runtime import Runtime, freeze_startup_heap

    _die_with_parent()
    configure_logging(settings)  # a log file slot of its own, not the parent's
    stop = StopSignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    parent = os.getppid()
    with Runtime(settings, prepare=False) as runtime:
        server = start_dimse_server(
            runtime.archive,
            runtime.auth,
            runtime.audit,
            settings,
            listener=listener,
            tls_listener=tls_listener,
            metrics=runtime.metrics,
            schedule=runtime.schedule,
        )
        freeze_startup_heap()
        while not stop.wait(1.0):
            if os.getppid() != parent:  # the parent went away without telling us
                break
        server.shutdown()


def _die_with_parent() -> None:
    """Ask Linux to send us SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
