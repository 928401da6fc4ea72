"""The MLLP listener: python-hl7's asyncio server on its own thread and event loop.

Messages of one connection are handled in order, one at a time (a sender waits for each
ACK, as MLLP's original mode expects); the work itself (database, blobs) runs on a worker
thread so the loop keeps serving other connections.

References
----------
HL7 v2.5.1 Appendix C (MLLP: <VT> message <FS><CR>).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import suppress

from hl7.mllp import InvalidBlockError, start_hl7_server
from hl7.mllp.streams import HL7StreamReader, HL7StreamWriter

from klinika.hl7.service import Hl7Service

log = logging.getLogger(__name__)
#: The largest message accepted (the rest of the connection is dropped past it).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class Hl7Listener:
    """Listens on ``host:port`` (port 0: a free one, see :attr:`port`) until :meth:`shutdown`."""

    def __init__(self, service: Hl7Service, host: str, port: int) -> None:
        self.service = service
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="klinika-hl7", daemon=True)

    def start(self) -> Hl7Listener:
        """Bind and serve in the background; raises OSError when the port cannot be bound."""
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        log.info("HL7 MLLP listener on %s:%s", self.host, self.port)
        return self

    def shutdown(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                start_hl7_server(self._connected, self.host, self.port, limit=MAX_MESSAGE_BYTES)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # the caller of start() sees it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            with suppress(Exception):
                self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

    async def _connected(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if address else None
        try:
            while True:
                try:
                    block = await reader.readblock()
                except InvalidBlockError:
                    log.warning("HL7 from %s: data outside an MLLP block dropped", peer)
                    continue
                ack = await asyncio.get_running_loop().run_in_executor(
                    None, self.service.handle, block, peer
                )
                writer.writeblock(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the sender closed the connection
        except ValueError:
            log.warning("HL7 from %s: a message larger than %s bytes", peer, MAX_MESSAGE_BYTES)
        finally:
            writer.close()
