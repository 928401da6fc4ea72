"""What the admin system page shows of the backup promise: the newest backup against the RPO,
the last verification and the last restore drill (from the audit trail)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from klinika.audit import AuditTrail
from klinika.backup.schedule import (
    DRILL_ACTION,
    VERIFY_ACTION,
    BackupStatus,
    backup_status,
    last_check,
)
from klinika.config import Settings


@dataclass(frozen=True)
class Check:
    """The last run of a check: when (UTC), passed, and what it said."""

    when: dt.datetime
    ok: bool
    details: dict[str, object]


@dataclass(frozen=True)
class BackupOverview:
    status: BackupStatus
    verified: Check | None
    drill: Check | None


def backup_overview(settings: Settings, audit: AuditTrail) -> BackupOverview:
    """The backup status now, and the last verification and drill recorded."""
    checks = []
    for action in (VERIFY_ACTION, DRILL_ACTION):
        last = last_check(audit, action)
        checks.append(Check(*last) if last else None)
    return BackupOverview(backup_status(settings), checks[0], checks[1])
