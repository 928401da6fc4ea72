"""DICOM nodes: the configured modalities merged with the nodes added in the console.

One lookup serves everyone: the DIMSE admission (:meth:`NodeRegistry.peers`), C-MOVE
destination resolution (:meth:`NodeRegistry.find`), Send to… and Query/Retrieve, and the
console's nodes page. Configured nodes (``modalities`` in the settings) are read-only; nodes
in the index (``dicom_nodes``) are added, edited and removed by an admin, each change an
audit event (``node:create`` / ``node:update`` / ``node:delete``).

Each process reads the index again after :data:`CACHE_SECONDS` (and at once after a change it
made itself), so a node added in the console is admitted by every DIMSE worker process within
that time, without a restart.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth.peers import LOCAL_ANY, DicomPeer
from klinika.auth.schema import dicom_nodes
from klinika.config import DIMSE_SERVICES, RemoteAE
from klinika.db import Database
from klinika.errors import Conflict, KlinikaError, NotFound

#: How long a process trusts its copy of the index's nodes (seconds).
CACHE_SECONDS = 5.0
#: How we retrieve from a node: C-MOVE to our own AE title, or C-GET on the association.
RETRIEVE_METHODS = ("move", "get")
Retrieve = Literal["move", "get"]
#: Where a node comes from.
CONFIGURATION, CONSOLE = "configuration", "console"


class InvalidNode(KlinikaError):
    """A node's title, address, port or services break the rules; the message says which."""


@dataclass(frozen=True)
class DicomNode:
    """A DICOM application entity we know: it may use ``services`` on us (keys of
    :data:`klinika.auth.peers.SERVICE_ACTIONS`), we send to it and query/retrieve from it at
    ``host:port``. ``tls``: DICOM TLS both ways (for a configured node: ``+cert``).
    ``source`` is ``configuration`` (read-only) or ``console`` (``node_id`` set)."""

    title: str
    host: str
    port: int
    services: frozenset[str]
    tls: bool = False
    retrieve: Retrieve = "move"
    description: str = ""
    source: str = CONSOLE
    node_id: int | None = None

    @property
    def editable(self) -> bool:
        return self.source == CONSOLE

    @property
    def remote(self) -> RemoteAE:
        """The node as an address to connect to (C-MOVE destination, Send to…, C-FIND)."""
        return RemoteAE(self.title, self.host, self.port, self.services, self.tls)

    @property
    def peer(self) -> DicomPeer:
        """The node as a calling AE to admit."""
        return DicomPeer(self.title, self.host, self.services, self.tls)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "title": self.title,
            "host": self.host,
            "port": self.port,
            "services": sorted(self.services),
            "tls": self.tls,
            "retrieve": self.retrieve,
            "description": self.description,
            "source": self.source,
        }

    @classmethod
    def configured(cls, remote: RemoteAE) -> DicomNode:
        return cls(
            remote.title,
            remote.host,
            remote.port,
            frozenset(remote.services),
            remote.client_certificate,
            source=CONFIGURATION,
        )


def checked_node(
    title: str,
    host: str,
    port: int | str,
    services: Iterable[str],
    *,
    tls: bool = False,
    retrieve: str = "move",
    description: str = "",
) -> DicomNode:
    """A console node from loose form values, or :class:`InvalidNode` naming the rule.

    An AE title is 1-16 characters of the default repertoire without backslash or control
    characters, not only spaces (PS3.5 6.2, VR AE).
    """
    title, host, description = title.strip(), host.strip(), description.strip()
    if not 1 <= len(title) <= 16 or not title.isascii() or "\\" in title:
        raise InvalidNode("an AE title is 1 to 16 ASCII characters without a backslash")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in title + host + description):
        raise InvalidNode("control characters are not allowed")
    if title == "*":
        raise InvalidNode("the title * is reserved for the local default")
    if not host or len(host) > 255 or any(c.isspace() for c in host):
        raise InvalidNode("the host is an IP address or a host name")
    if "/" in host:
        try:
            ipaddress.ip_network(host, strict=False)
        except ValueError as exc:
            raise InvalidNode(f"{host!r} is not a network") from exc
    try:
        number = int(port)
    except (TypeError, ValueError) as exc:
        raise InvalidNode("the port must be a number") from exc
    if not 1 <= number <= 65535:
        raise InvalidNode("the port must be between 1 and 65535")
    chosen = frozenset(s.strip() for s in services if s.strip())
    if not chosen <= DIMSE_SERVICES:
        raise InvalidNode(f"services are {', '.join(sorted(DIMSE_SERVICES))}")
    if retrieve not in RETRIEVE_METHODS:
        raise InvalidNode("retrieve with move or get")
    if len(description) > 255:
        raise InvalidNode("the description is at most 255 characters")
    method: Retrieve = "get" if retrieve == "get" else "move"
    return DicomNode(title, host, number, chosen, tls, method, description)


class NodeRegistry:
    """The known DICOM nodes of one installation (see the module docstring); without an
    audit trail it only reads (the CLI's lookups)."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail | None,
        configured: Iterable[RemoteAE] = (),
        *,
        strict: bool = False,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.audit = audit
        self.configured = tuple(DicomNode.configured(m) for m in configured)
        self.strict = strict
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._cached: tuple[float, tuple[DicomNode, ...]] | None = None

    # ----------------------------------------------------------------- reads
    def stored(self) -> tuple[DicomNode, ...]:
        """The console's nodes, from the index or this process's copy of them."""
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() - cached[0] < self._cache_seconds:
                return cached[1]
        with self.database.reader.connect() as connection:
            rows = connection.execute(sa.select(dicom_nodes).order_by(dicom_nodes.c.title))
            nodes = tuple(_node(dict(row._mapping)) for row in rows)
        with self._lock:
            self._cached = (self._clock(), nodes)
        return nodes

    def nodes(self) -> list[DicomNode]:
        """Every node: the configured ones first (they win a title both hold), then the
        console's."""
        taken = {n.title for n in self.configured}
        return [*self.configured, *(n for n in self.stored() if n.title not in taken)]

    def peers(self) -> tuple[DicomPeer, ...]:
        """The calling AEs to admit: every node, plus (unless strict) echo and store from any
        AE title on this machine."""
        known = tuple(node.peer for node in self.nodes())
        return known if self.strict else known + LOCAL_ANY

    def find(self, title: str) -> DicomNode | None:
        """The node with this AE title (a C-MOVE destination, a Send to… target)."""
        wanted = title.strip()
        return next((n for n in self.nodes() if n.title == wanted), None)

    def get(self, node_id: int) -> DicomNode:
        node = next((n for n in self.stored() if n.node_id == node_id), None)
        if node is None:
            self.forget()
            node = next((n for n in self.stored() if n.node_id == node_id), None)
        if node is None:
            raise NotFound(f"no DICOM node {node_id}")
        return node

    def forget(self) -> None:
        """Drop this process's copy: the next read goes to the index."""
        with self._lock:
            self._cached = None

    # ---------------------------------------------------------------- changes
    def add(self, node: DicomNode, *, actor: Actor, source: str | None = None) -> DicomNode:
        """Store a console node; a title already known (configured or not) is a Conflict."""
        if self.find(node.title) is not None or any(n.title == node.title for n in self.stored()):
            raise Conflict(f"a node with the AE title {node.title} exists")
        now = int(self._now())
        try:
            with self.database.writer.begin() as connection:
                key = connection.execute(
                    sa.insert(dicom_nodes).values(**_columns(node), created_at=now, updated_at=now)
                ).inserted_primary_key
            assert key is not None
            node_id = key[0]
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"a node with the AE title {node.title} exists") from exc
        self.forget()
        self._record(actor, "node:create", source, node)
        return self.get(int(node_id))

    def update(
        self, node_id: int, node: DicomNode, *, actor: Actor, source: str | None = None
    ) -> DicomNode:
        """Change a console node (configured ones cannot be changed here)."""
        before = self.get(node_id)
        if node.title != before.title and self.find(node.title) is not None:
            raise Conflict(f"a node with the AE title {node.title} exists")
        try:
            with self.database.writer.begin() as connection:
                connection.execute(
                    sa.update(dicom_nodes)
                    .where(dicom_nodes.c.id == node_id)
                    .values(**_columns(node), updated_at=int(self._now()))
                )
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"a node with the AE title {node.title} exists") from exc
        self.forget()
        self._record(actor, "node:update", source, node, before=before.as_dict())
        return self.get(node_id)

    def remove(self, node_id: int, *, actor: Actor, source: str | None = None) -> None:
        node = self.get(node_id)
        with self.database.writer.begin() as connection:
            connection.execute(sa.delete(dicom_nodes).where(dicom_nodes.c.id == node_id))
        self.forget()
        self._record(actor, "node:delete", source, node)

    def _record(
        self, actor: Actor, action: str, source: str | None, node: DicomNode, **extra: Any
    ) -> None:
        details = {k: v for k, v in node.as_dict().items() if k not in ("id", "source")}
        if self.audit is None:
            raise RuntimeError("a read-only node registry cannot change nodes")
        self.audit.record(
            actor, action, Outcome.SUCCESS, source=source, details={**details, **extra}
        )


def _columns(node: DicomNode) -> dict[str, Any]:
    return {
        "title": node.title,
        "host": node.host,
        "port": node.port,
        "tls": node.tls,
        "services": ",".join(sorted(node.services)),
        "retrieve": node.retrieve,
        "description": node.description,
    }


def _node(row: Mapping[str, Any]) -> DicomNode:
    services = frozenset(s for s in str(row["services"]).split(",") if s)
    retrieve: Retrieve = "get" if row["retrieve"] == "get" else "move"
    return DicomNode(
        row["title"],
        row["host"],
        int(row["port"]),
        services,
        bool(row["tls"]),
        retrieve,
        row["description"] or "",
        CONSOLE,
        int(row["id"]),
    )
