"""The audit chain's heads that backups recorded: anchors of the trail outside the database."""

from __future__ import annotations

from pathlib import Path

from klinika.audit import Anchor
from klinika.backup.manifest import BackupError, read_manifest
from klinika.backup.retention import backups_in


def audit_anchors(destination: Path) -> tuple[list[Anchor], list[str]]:
    """The ``audit_head`` of every backup in ``destination``, and the backups whose manifest
    cannot be read. :meth:`klinika.audit.AuditTrail.verify` checks the live chain still
    holds each head: a trail cut below a backup's head, or rewritten, no longer matches."""
    anchors: list[Anchor] = []
    problems: list[str] = []
    for backup in backups_in(destination):
        try:
            manifest = read_manifest(backup)
        except BackupError as exc:
            problems.append(str(exc))
            continue
        if manifest.audit_head:
            seq, head_hash = manifest.audit_head
            anchors.append(Anchor(f"backup {backup}", int(seq), str(head_hash)))
    return anchors, problems
