"""The server-rendered pages (Jinja2): login, worklist, schedule, upload, export, reports, admin.

Each page module exposes ``create_router(context: PageContext) -> APIRouter``; routes declare
their action with ``Depends(context.guard(...))`` like every other route, and templates ask
``can("action")``, which reads the same permission table. Templates live in ``templates/``
(one sub-folder per page module), static files in ``static/`` (served at ``/static/``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from klinika.web.csrf import require_form_token
from klinika.web.pages import admin, export, login, reports, schedule, studies, upload, worklist
from klinika.web.pages.context import PageContext, Pages

__all__ = ["PageContext", "Pages", "create_pages_router"]

PAGE_MODULES = (login, worklist, schedule, studies, upload, export, reports, admin)


def create_pages_router(context: PageContext) -> APIRouter:
    # every form of the console carries the CSRF token (GETs pass untouched)
    router = APIRouter(include_in_schema=False, dependencies=[Depends(require_form_token)])
    for module in PAGE_MODULES:
        router.include_router(module.create_router(context))
    return router
