"""Liveness and readiness: public, no patient data.

Readiness answers 503 when the database or the blob storage cannot be reached (take the
process out of rotation), and 200 with ``"status": "degraded"`` when everything serves but the
newest backup is older than the RPO: an alarm for people, not a reason to stop serving.
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from klinika import __version__
from klinika.backup.schedule import backup_status
from klinika.config import Settings
from klinika.db import Database
from klinika.storage import BlobStore

#: Checks whose failure makes the process unready; the others only degrade it.
REQUIRED = ("database", "storage")


def readiness(
    database: Database, blobs: BlobStore, settings: Settings | None = None
) -> dict[str, str]:
    """``ok`` or what is wrong, for the database and the blob storage, and (with the settings
    and a backup destination) the backups against the RPO."""
    checks = {"database": "ok", "storage": "ok"}
    try:
        with database.reader.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        problem = blobs.check()
    except Exception as exc:  # any failure means not ready
        problem = type(exc).__name__
    if problem:
        checks["storage"] = f"error: {problem}"
    if settings is not None and settings.backup_dir is not None:
        checks["backup"] = backup_status(settings).describe()
    return checks


def overall(checks: dict[str, str]) -> str:
    """``ok``, ``degraded`` (a non-required check fails) or ``error``."""
    if any(checks[name] != "ok" for name in REQUIRED if name in checks):
        return "error"
    return "ok" if all(value == "ok" for value in checks.values()) else "degraded"


def create_health_router(
    database: Database, blobs: BlobStore, settings: Settings | None = None
) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @router.get(
        "/health/ready",
        summary="Readiness: database and storage reachable (503 if not); degraded when the "
        "newest backup is older than the RPO",
    )
    def ready() -> JSONResponse:
        checks = readiness(database, blobs, settings)
        status = overall(checks)
        return JSONResponse(
            {"status": status, **checks}, status_code=503 if status == "error" else 200
        )

    return router
