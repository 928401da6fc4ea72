"""The admin console: users and their sessions, the audit trail, the system. Every change goes
through the same service methods as the API (``/api/users``, ``/api/sessions``, ``/api/audit``)."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from klinika import __version__
from klinika.audit.trail import AuditFilter
from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.auth.passwords import generate_password
from klinika.auth.permissions import USER_ROLES
from klinika.dicom.attributes import Level
from klinika.errors import KlinikaError
from klinika.i18n import LANGUAGES, translator
from klinika.index.query import Query as IndexQuery
from klinika.web.health import readiness
from klinika.web.pages.backups import backup_overview
from klinika.web.pages.context import ROLE_LABELS, PageContext, request_language
from klinika.web.pages.labels import ACTION_LABELS, OUTCOME_LABELS, browser_summary

AUDIT_PAGE = 100


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    auth, pages = context.auth, context.pages
    Admin = Annotated[Principal, Depends(context.guard("user:manage"))]
    Auditor = Annotated[Principal, Depends(context.guard("audit:read"))]
    Operator = Annotated[Principal, Depends(context.guard("backup:manage"))]

    def users_page(request: Request, status_code: int = 200, **values: Any) -> Response:
        return pages.render(
            request,
            "admin/users.html",
            status_code=status_code,
            active="admin",
            tab="users",
            users=auth.list_users(),
            sessions=auth.list_sessions(),
            roles=[(role.value, ROLE_LABELS[role]) for role in USER_ROLES],
            language_codes=LANGUAGES,
            browser_summary=browser_summary,
            **values,
        )

    @router.get("/admin")
    def admin_home(_: Admin) -> Response:
        return RedirectResponse("/admin/users", status_code=303)

    @router.get("/admin/users")
    def users(request: Request, _: Admin) -> Response:
        return users_page(request)

    @router.post("/admin/users")
    def create_user(
        request: Request,
        principal: Admin,
        username: Annotated[str, Form(max_length=64)],
        role: Annotated[str, Form(max_length=16)],
        language: Annotated[str, Form(max_length=8)] = "auto",
        display_name: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        password = generate_password()
        try:
            auth.create_user(
                username,
                role,
                password,
                display_name=display_name,
                language=language,
                actor=principal.actor,
                source=client_address(request),
            )
        except KlinikaError as exc:
            return users_page(request, status_code=400, error=str(exc))
        return users_page(request, created=(username, password))

    @router.post("/admin/users/{username}")
    def update_user(
        request: Request,
        username: str,
        principal: Admin,
        role: Annotated[str, Form(max_length=16)],
        language: Annotated[str, Form(max_length=8)],
        display_name: Annotated[str, Form(max_length=128)] = "",
        active: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        try:
            auth.update_user(
                username,
                role=role,
                language=language,
                display_name=display_name,
                active=active == "on",
                actor=principal.actor,
                source=client_address(request),
            )
        except KlinikaError as exc:
            return users_page(request, status_code=400, error=str(exc))
        return users_page(request, updated=username)

    @router.post("/admin/users/{username}/password")
    def reset_password(request: Request, username: str, principal: Admin) -> Response:
        password = generate_password()
        try:
            auth.set_password(
                username, password, actor=principal.actor, source=client_address(request)
            )
        except KlinikaError as exc:
            return users_page(request, status_code=400, error=str(exc))
        return users_page(request, reset=(username, password))

    @router.get("/admin/users/ended")
    def session_ended(
        request: Request, _: Admin, user: Annotated[str, Query(max_length=64)] = ""
    ) -> Response:
        """Where ending a session lands: the page, with a notice naming whose it was."""
        return users_page(request, ended=user)

    @router.post("/admin/sessions/{session_id}/revoke")
    def revoke_session(request: Request, session_id: str, principal: Admin) -> Response:
        owner = next((s.username for s in auth.list_sessions() if s.id == session_id), "")
        try:
            auth.revoke_session(session_id, actor=principal.actor, source=client_address(request))
        except KlinikaError as exc:
            return users_page(request, status_code=400, error=str(exc))
        return RedirectResponse(f"/admin/users/ended?{urlencode({'user': owner})}", 303)

    @router.get("/admin/audit")
    async def audit(
        request: Request,
        principal: Auditor,
        actor: Annotated[str, Query(max_length=64)] = "",
        action: Annotated[str, Query(max_length=64)] = "",
        patient_id: Annotated[str, Query(max_length=64)] = "",
        since: Annotated[str, Query(max_length=10)] = "",
        until: Annotated[str, Query(max_length=10)] = "",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        verify: bool = False,
    ) -> Response:
        filters = {
            "actor": actor,
            "action": action,
            "patient_id": patient_id,
            "since": since,
            "until": until,
        }
        where = AuditFilter(**{k: v or None for k, v in filters.items()})
        error = None
        try:
            events, total = await run_in_threadpool(
                context.audit.search, where, limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE
            )
        except KlinikaError as exc:  # a malformed date typed into the URL
            events, total, error = [], 0, str(exc)
        chain = await run_in_threadpool(context.audit.verify) if verify else None
        query = {k: v for k, v in filters.items() if v}
        speak = translator(request_language(request, principal))
        choices = sorted(
            ((code, speak.gettext(label)) for code, label in ACTION_LABELS.items()),
            key=lambda choice: choice[1].casefold(),
        )
        if action and action not in ACTION_LABELS:  # a code typed into the URL stays chosen
            choices.append((action, action))
        return pages.render(
            request,
            "admin/audit.html",
            status_code=400 if error else 200,
            active="admin",
            tab="audit",
            events=[e.as_dict() for e in events],
            total=total,
            page=page,
            pages=max(1, -(-total // AUDIT_PAGE)),
            filters=query,
            query=urlencode(query),
            chain=chain,
            error=error,
            action_choices=choices,
            action_labels=ACTION_LABELS,
            outcome_labels=OUTCOME_LABELS,
        )

    @router.get("/admin/system")
    async def system(request: Request, _: Operator) -> Response:
        archive = context.archive
        counts = {}
        for level in (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE):
            counts[level.name.lower()] = await run_in_threadpool(
                archive.count, IndexQuery(level, strict=False)
            )
        usage = await run_in_threadpool(context.blobs.usage)
        settings = context.settings
        return pages.render(
            request,
            "admin/system.html",
            active="admin",
            tab="system",
            counts=counts,
            stored=await run_in_threadpool(archive.stored_bytes),
            usage=usage,
            version=__version__,
            settings=settings,
            nodes=await run_in_threadpool(context.nodes.nodes),
            database=settings.database_url.split(":", 1)[0],
            health=await run_in_threadpool(readiness, context.database, context.blobs, settings),
            backup=await run_in_threadpool(backup_overview, settings, context.audit),
        )

    return router
