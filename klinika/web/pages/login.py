"""Login, logout, the language switch, and the home redirect."""

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from klinika.auth.errors import (
    InvalidAccount,
    LoginThrottled,
    PasswordRejected,
    Unauthenticated,
)
from klinika.auth.http import (
    clear_session_cookie,
    client_address,
    scope_principal,
    set_session_cookie,
)
from klinika.auth.models import Principal
from klinika.auth.permissions import Role
from klinika.i18n import LANGUAGES, N_, translator
from klinika.web.pages.context import (
    AUTO,
    PageContext,
    remember_language,
    request_language,
    safe_next,
)

HOME = "/worklist"
PASSWORD_PAGE = "/account/password"
PASSWORDS_DIFFER = N_("The two new passwords differ.")
#: the password policy's refusals (PasswordRejected.rule), as the page says them
POLICY_MESSAGES = {
    "too-short": N_("A password needs at least %(limit)d characters."),
    "too-long": N_("A password may have at most %(limit)d characters."),
    "too-few-characters": N_("A password needs at least %(limit)d different characters."),
    "common": N_("This password is in a list of commonly used passwords."),
    "username": N_("A password must not be the user name."),
    "wrong-current": N_("The current password is not correct."),
}
PASSWORD_CHANGED = N_("Your password was changed. Your other sessions were ended.")
WRONG_CREDENTIALS = N_("Wrong user name or password.")
THROTTLED = N_("Too many failed attempts. Try again in a few minutes.")


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    auth, pages = context.auth, context.pages

    @router.get("/", dependencies=[Depends(context.guard("account:self"))])
    def home() -> RedirectResponse:
        return RedirectResponse(HOME, status_code=303)

    @router.get("/login")
    def login_page(request: Request, next: str = HOME) -> Response:
        return pages.render(request, "login.html", next=safe_next(next, HOME), error=None)

    @router.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=256)],
        password: Annotated[str, Form(max_length=4096)],
        next: Annotated[str, Form()] = HOME,
    ) -> Response:
        target = safe_next(next, HOME)
        try:
            result = auth.login(
                username,
                password,
                source=client_address(request),
                user_agent=request.headers.get("user-agent"),
            )
        except (Unauthenticated, LoginThrottled) as exc:
            error = THROTTLED if isinstance(exc, LoginThrottled) else WRONG_CREDENTIALS
            return pages.render(
                request, "login.html", status_code=401, next=target, error=error, username=username
            )
        if result.user.must_change_password:
            target = PASSWORD_PAGE
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(request, response, result.token, result.expires_at - int(time.time()))
        if not request.cookies.get("klinika_lang") and result.user.language in LANGUAGES:
            remember_language(response, result.user.language)
        return response

    Me = Annotated[Principal, Depends(context.guard("account:self"))]

    @router.get(PASSWORD_PAGE)
    def password_page(request: Request, principal: Me) -> Response:
        changed = request.query_params.get("changed") == "1"
        return pages.render(
            request,
            "account/password.html",
            active="account",
            forced=principal.must_change_password,
            error=None,
            notice=translator(request_language(request, principal)).gettext(PASSWORD_CHANGED)
            if changed
            else None,
        )

    @router.post(PASSWORD_PAGE)
    def change_password(
        request: Request,
        principal: Me,
        current_password: Annotated[str, Form(max_length=4096)],
        new_password: Annotated[str, Form(max_length=4096)],
        confirm_password: Annotated[str, Form(max_length=4096)],
    ) -> Response:
        """The user's own password change (forced after a generated one); a fresh session."""
        speak = translator(request_language(request, principal))
        try:
            if new_password != confirm_password:
                raise InvalidAccount(speak.gettext(PASSWORDS_DIFFER))
            result = auth.change_own_password(
                principal,
                current_password,
                new_password,
                source=client_address(request),
                user_agent=request.headers.get("user-agent"),
            )
        except (InvalidAccount, LoginThrottled) as exc:
            error = str(exc)
            if isinstance(exc, PasswordRejected) and exc.rule in POLICY_MESSAGES:
                error = speak.gettext(POLICY_MESSAGES[exc.rule], limit=exc.limit)
            elif isinstance(exc, LoginThrottled):
                error = speak.gettext(THROTTLED)
            return pages.render(
                request,
                "account/password.html",
                status_code=400,
                active="account",
                forced=principal.must_change_password,
                error=error,
                notice=None,
            )
        # a generated password leads on to the worklist; a change of one's own, to the notice
        target = HOME if principal.must_change_password else PASSWORD_PAGE + "?changed=1"
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(request, response, result.token, result.expires_at - int(time.time()))
        return response

    @router.post("/logout")
    def logout(
        request: Request, principal: Annotated[Principal, Depends(context.guard("account:self"))]
    ) -> Response:
        auth.logout(principal, source=client_address(request))
        response = RedirectResponse("/login", status_code=303)
        clear_session_cookie(request, response)
        return response

    @router.post("/language")
    def choose_language(
        request: Request,
        language: Annotated[str, Form()],
        next: Annotated[str, Form()] = HOME,
    ) -> Response:
        """The language switch: remembered in a cookie and, when logged in, as the user's
        preference; ``auto`` forgets both (the browser's language again)."""
        response = RedirectResponse(safe_next(next, HOME), status_code=303)
        if language not in LANGUAGES and language != AUTO:
            return response
        remember_language(response, language)
        principal = scope_principal(request)
        if principal is not None and principal.role != Role.MODALITY:
            auth.update_user(
                principal.username,
                language=language,
                actor=principal.actor,
                source=client_address(request),
            )
        return response

    return router
