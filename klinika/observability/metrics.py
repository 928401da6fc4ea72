"""Prometheus instruments, and exposing them from one process or many.

:class:`Metrics` holds every instrument Klinika records into; the runtime builds one per
process and hands it to the edges. Values that are *states* of the installation (storage
free, index size, age of the newest backup, the audit chain's last check) are not counted
as they happen but read when Prometheus scrapes, by the probes added with
:meth:`Metrics.set_probe`.

Several HTTP workers (``klinika serve --workers N``) share one ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multi-process mode): each process writes its counters to memory-mapped
files there, and a scrape, whichever process answers it, adds them up. The directory must be
empty when the processes start (:func:`use_multiprocess` clears it).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: A probe returns metric families read now (e.g. ``GaugeMetricFamily``).
StateProbe = Callable[[], Iterable[Metric]]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DIMSE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0)


def multiprocess_dir() -> Path | None:
    """The shared directory of multi-process mode, when this process runs in it."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def use_multiprocess(path: Path, *, clear: bool = True) -> None:
    """Put this process (and the processes it starts, through the environment) in
    multi-process mode on ``path``. With ``clear``, files of earlier runs are removed: their
    counters would otherwise be added to this run's."""
    path.mkdir(parents=True, exist_ok=True)
    if clear:
        for stale in path.glob("*.db"):
            stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus_client picks its value class when first imported; pick again now.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


class _StateCollector(Collector):
    """Calls the probes at scrape time; a failing probe is logged and skipped, never fails
    the scrape."""

    def __init__(self, probes: dict[str, StateProbe]) -> None:
        self._probes = probes

    def collect(self) -> Iterable[Metric]:
        for name, probe in list(self._probes.items()):
            try:
                yield from list(probe())
            except Exception:  # a state we cannot read now is absent from this scrape
                log.warning("metrics probe %s failed", name, exc_info=True)


class _MultiProcess(Collector):
    """prometheus_client's :class:`MultiProcessCollector`, after forgetting the live gauges
    of processes that are gone (a worker restarted by its supervisor)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._collector = multiprocess.MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for name in glob.glob(str(self.path / "gauge_live*_*.db")):
            pid = int(Path(name).stem.rsplit("_", 1)[1])
            if not _alive(pid):
                multiprocess.mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]
        metrics: Iterable[Metric] = self._collector.collect()  # type: ignore[no-untyped-call]
        return metrics


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Metrics:
    """Every instrument of one process (names follow Prometheus' conventions: ``_total``
    counters, ``_seconds`` and ``_bytes`` units)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir()
        self.registry = CollectorRegistry()
        own = None if self.multiprocess else self.registry
        self.probes: dict[str, StateProbe] = {}
        self._lock = threading.Lock()

        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, labels, registry=own)

        def live_gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=own, multiprocess_mode="livesum")

        self.http_requests = counter(
            "klinika_http_requests",
            "HTTP requests by route template and status",
            ("method", "route", "status"),
        )
        self.http_duration = Histogram(
            "klinika_http_request_duration_seconds",
            "HTTP request latency (until the response is sent) by route template",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self.login_failures = counter(
            "klinika_login_failures", "Failed logins (wrong credentials, or throttled)", ("reason",)
        )
        self.dimse_associations = counter(
            "klinika_dimse_associations",
            "DIMSE associations requested of us, by result (accepted, rejected, aborted)",
            ("result",),
        )
        self.dimse_active = live_gauge("klinika_dimse_associations_active", "Open associations")
        self.dimse_operations = counter(
            "klinika_dimse_operations",
            "DIMSE operations answered, by service and status class "
            "(success, warning, failure, cancel)",
            ("operation", "status"),
        )
        self.dimse_duration = Histogram(
            "klinika_dimse_operation_duration_seconds",
            "DIMSE operation latency (request received to final response sent)",
            ("operation",),
            buckets=_DIMSE_BUCKETS,
            registry=own,
        )
        self.ingest_instances = counter(
            "klinika_ingest_instances", "Instances committed to the archive", ("outcome",)
        )
        self.ingest_bytes = counter(
            "klinika_ingest_bytes", "Bytes of the instances committed (as received)"
        )
        self.wado_transcodes = counter(
            "klinika_wado_transcodes",
            "WADO-RS instances transcoded (outcome: encoded, or served from the cache)",
            ["outcome"],
        )
        self.audit_queue = live_gauge(
            "klinika_audit_queue_depth", "Audit events queued and not yet written"
        )
        self.db_connections = live_gauge(
            "klinika_db_connections_in_use", "Database connections checked out", ("engine",)
        )
        self.db_pool_size = live_gauge(
            "klinika_db_pool_size", "Database connection pool size (without overflow)", ("engine",)
        )
        self.backups = counter(
            "klinika_backup_runs", "Scheduled backups run by this process, by outcome", ("outcome",)
        )
        # Series that alerts take increase() of exist from zero, so a first event is a rise.
        for reason in ("rejected", "throttled"):
            self.login_failures.labels(reason)
        for result in ("accepted", "rejected", "aborted"):
            self.dimse_associations.labels(result)
        for outcome in ("success", "failure"):
            self.backups.labels(outcome)
        self.registry.register(_StateCollector(self.probes))

    def set_probe(self, name: str, probe: StateProbe) -> None:
        """Read ``probe`` at each scrape (a probe of the same name is replaced)."""
        with self._lock:
            self.probes[name] = probe

    def observe_ingest(self, outcomes: Sequence[Any]) -> None:
        """An :class:`~klinika.archive.Archive` listener: count what a batch committed."""
        for outcome in outcomes:
            self.ingest_instances.labels(outcome.status).inc()
            self.ingest_bytes.inc(getattr(outcome, "size", None) or 0)


def metrics_registry(metrics: Metrics) -> CollectorRegistry:
    """The registry a scrape reads: this process's instruments and probes, or, in
    multi-process mode, every process's files plus this process's probes."""
    if metrics.multiprocess is None:
        return metrics.registry
    registry = CollectorRegistry()
    registry.register(_MultiProcess(metrics.multiprocess))
    registry.register(_StateCollector(metrics.probes))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of ``registry`` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsServer:
    """The metrics listener of one process (prometheus_client's WSGI server thread)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(metrics: Metrics, host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` in a background thread (no authentication: bind
    it to loopback or a monitoring network only)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=metrics_registry(metrics))
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return MetricsServer(server, thread)


def watch_pool(metrics: Metrics, engine: Any, label: str) -> None:
    """Follow the connection pool of a SQLAlchemy ``engine``: its size now, and connections
    in use through the pool's checkout/checkin events."""
    from sqlalchemy import event

    in_use = metrics.db_connections.labels(label)
    size = getattr(engine.pool, "size", None)
    if callable(size):
        metrics.db_pool_size.labels(label).set(size())

    def checked_out(*_args: Any) -> None:
        in_use.inc()

    def checked_in(*_args: Any) -> None:
        in_use.dec()

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)
