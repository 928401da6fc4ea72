"""The console's appearance: the light/dark theme switch (``POST /theme``), kept in a cookie
next to the language one. The console's pages follow it; OHIF keeps its own dark look."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse, Response

from klinika.web.pages.context import THEME_COOKIE, THEMES, PageContext, safe_next

HOME = "/worklist"


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()

    @router.post("/theme", dependencies=[Depends(context.guard("account:self"))])
    def choose_theme(
        theme: Annotated[str, Form(max_length=8)],
        next: Annotated[str, Form(max_length=4000)] = HOME,
    ) -> Response:
        """Remember the theme for a year and go back to the page it was chosen on."""
        response = RedirectResponse(safe_next(next, HOME), status_code=303)
        if theme in THEMES:
            response.set_cookie(
                THEME_COOKIE, theme, max_age=365 * 86400, path="/", samesite="strict"
            )
        return response

    return router
