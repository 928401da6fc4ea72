"""Admin HTTP resources of the audit trail: search, export, verify.

The permission guard comes from the caller (:func:`~klinika.web.app.create_app`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from klinika.audit.export import to_csv, to_json
from klinika.audit.trail import AuditFilter, AuditTrail

Guard = Callable[[str], Any]
MAX_PAGE = 1000


def _filter(
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    study_uid: str | None = None,
    patient_id: str | None = None,
    source: str | None = None,
    since: Annotated[str | None, Query(description="ISO-8601 date or date-time (UTC)")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 date or date-time (UTC)")] = None,
) -> AuditFilter:
    return AuditFilter(actor, action, outcome, study_uid, patient_id, source, since, until)


def create_audit_router(trail: AuditTrail, guard: Guard) -> APIRouter:
    """``/api/audit``: admins only (action ``audit:read``)."""
    router = APIRouter(prefix="/api/audit", tags=["audit"])
    needs = [Depends(guard("audit:read"))]

    @router.get("", summary="Search the audit trail (newest first)", dependencies=needs)
    def search(
        where: Annotated[AuditFilter, Depends(_filter)],
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        events, total = trail.search(where, limit=limit, offset=offset)
        return {
            "total": total,
            "limit": limit,
            "offset": offset,
            "events": [e.as_dict() for e in events],
        }

    @router.get("/export", summary="Export the audit trail as CSV or JSON", dependencies=needs)
    def export(
        where: Annotated[AuditFilter, Depends(_filter)],
        format: Literal["csv", "json"] = "csv",
    ) -> StreamingResponse:
        events = trail.iter_events(where)
        if format == "json":
            return StreamingResponse(
                to_json(events),
                media_type="application/json",
                headers={"Content-Disposition": 'attachment; filename="audit.json"'},
            )
        return StreamingResponse(
            to_csv(events),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )

    @router.get("/verify", summary="Verify the hash chain", dependencies=needs)
    def verify() -> dict[str, Any]:
        result = trail.verify()
        return {
            "ok": result.ok,
            "checked": result.checked,
            "head_seq": result.head_seq,
            "first_bad_seq": result.first_bad_seq,
            "problem": result.problem,
            "anchors": result.anchors,  # checkpoints compared (backups: `klinika audit verify`)
            "keyed_from": result.keyed_from,
        }

    return router
