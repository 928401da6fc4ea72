"""The admin pages (not built yet)."""

from __future__ import annotations

from fastapi import APIRouter

from klinika.web.pages.context import PageContext


def create_router(context: PageContext) -> APIRouter:
    return APIRouter()
