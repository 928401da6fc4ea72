"""Liveness and readiness: public, no patient data."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from klinika import __version__
from klinika.db import Database
from klinika.storage import BlobStore


def readiness(database: Database, blobs: BlobStore) -> dict[str, str]:
    """``ok`` or what is wrong, for the database and the blob storage."""
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
    return checks


def create_health_router(database: Database, blobs: BlobStore) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @router.get("/health/ready", summary="Readiness: database and storage reachable")
    def ready() -> JSONResponse:
        checks = readiness(database, blobs)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "error", **checks}, status_code=200 if ok else 503
        )

    return router
