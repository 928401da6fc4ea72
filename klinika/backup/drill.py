"""The restore drill: restore a backup into a scratch installation, prove it whole, time it.

A backup nobody restored is a hope. The drill does what a real restore does (verify every
checksum, copy the blobs, load the index, migrate it, fsck, verify the audit chain) into a
scratch folder, and reports how long each step took, so the RTO for the archive's size, and
for any other size at the same throughput, is a measurement rather than a guess.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from klinika.archive import Archive
from klinika.audit import AuditTrail
from klinika.backup.fsck import fsck
from klinika.backup.manifest import BackupError, read_manifest
from klinika.backup.retention import backups_in
from klinika.backup.snapshot import restore_backup
from klinika.db import Database
from klinika.index import schema as _schema  # noqa: F401  (registers the index tables)
from klinika.storage import FileStore


@dataclass
class DrillReport:
    """What one drill measured. ``bytes`` are the blobs' sizes as received."""

    backup: str
    instances: int
    blobs: int
    bytes: int
    restore_seconds: float
    check_seconds: float
    fsck_clean: bool
    audit_chain_ok: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fsck_clean and self.audit_chain_ok and not self.problems

    @property
    def seconds(self) -> float:
        """The measured RTO of this backup: restore plus the checks."""
        return self.restore_seconds + self.check_seconds

    def rto_for(self, size_bytes: int) -> float:
        """Seconds to restore and check ``size_bytes`` at this drill's throughput (linear: the
        work is reading and writing each byte; the index is ~1 % of the blobs)."""
        if self.bytes <= 0:
            return self.seconds
        return self.seconds * size_bytes / self.bytes

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"seconds": round(self.seconds, 3), "ok": self.ok}


def resolve_backup(path: Path) -> Path:
    """``path`` itself when it is a backup, else the newest backup in that destination.

    Raises
    ------
    BackupError
        When neither holds a backup.
    """
    if (path / "manifest.json").is_file():
        return path
    found = backups_in(path)
    if not found:
        raise BackupError(f"{path} holds no backup")
    return found[0]


def run_drill(
    backup: Path,
    scratch: Path,
    *,
    database_url: str | None = None,
    keep: bool = False,
    audit_keys: Sequence[bytes] = (),
) -> DrillReport:
    """Restore ``backup`` into ``scratch`` (an empty or new folder; SQLite there unless
    ``database_url`` names a scratch database, which a PostgreSQL dump needs), fsck it and
    verify its audit chain (with ``audit_keys``, the installation's: the keyed chain cannot be
    checked without them). The scratch folder is removed afterwards unless ``keep``.

    Raises
    ------
    BackupError
        When the backup is not whole, or the scratch target is not empty.
    """
    if scratch.exists() and any(scratch.iterdir()):
        raise BackupError(f"the scratch folder {scratch} is not empty")
    scratch.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{(scratch / 'index.sqlite').resolve()}"
    try:
        started = time.monotonic()
        blobs = FileStore(scratch / "blobs")
        manifest = restore_backup(backup, url, blobs)
        restored = time.monotonic() - started
        database = Database(url)
        try:
            database.upgrade()
            key, *older = audit_keys or (None,)
            audit = AuditTrail(database, key=key, older_keys=older)
            report = fsck(Archive(database, blobs))
            chain = audit.verify()
            audit.close()
        finally:
            database.dispose()
        checked = time.monotonic() - started - restored
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    problems = [f"{name}: {len(getattr(report, name))}" for name in ("missing", "corrupt")]
    return DrillReport(
        backup=str(backup),
        instances=manifest.counts.get("instances", 0),
        blobs=len(manifest.blobs),
        bytes=sum(size for _key, size in read_manifest(backup).blobs),
        restore_seconds=round(restored, 3),
        check_seconds=round(checked, 3),
        fsck_clean=report.clean,
        audit_chain_ok=chain.ok,
        problems=[p for p in problems if not p.endswith(": 0")]
        + ([chain.problem] if chain.problem else []),
    )
