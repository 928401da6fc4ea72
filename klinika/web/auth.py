"""HTTP resources of auth (:mod:`klinika.auth`): login/logout/me, own password and language,
and (admin) users and sessions. Each route parses, calls one service method, and answers."""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from klinika.auth.http import (
    Guard,
    clear_session_cookie,
    client_address,
    set_session_cookie,
)
from klinika.auth.models import LoginResult, Principal
from klinika.auth.passwords import generate_password
from klinika.auth.service import AuthService


class LoginBody(BaseModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=4096)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class LanguageBody(BaseModel):
    language: str


class NewUser(BaseModel):
    username: str
    role: str
    password: str | None = Field(None, description="generated and returned once when absent")
    display_name: str = ""
    language: str = Field("auto", description="a language code, or auto: the browser's")


class UserChange(BaseModel):
    role: str | None = None
    language: str | None = None
    active: bool | None = None
    display_name: str | None = None


class PasswordReset(BaseModel):
    password: str | None = Field(None, description="generated and returned once when absent")


def _session_answer(request: Request, response: Response, result: LoginResult) -> dict[str, Any]:
    set_session_cookie(request, response, result.token, result.expires_at - int(time.time()))
    return {
        "access_token": result.token,
        "token_type": "bearer",
        "expires_at": result.expires_at,
        "user": result.user.as_dict(),
    }


def create_auth_router(auth: AuthService, guard: Guard) -> APIRouter:
    """``/api/auth/*`` (any user for their own account), ``/api/users`` and
    ``/api/sessions`` (admins)."""
    router = APIRouter(tags=["auth"])
    Me = Annotated[Principal, Depends(guard("account:self"))]
    Admin = Annotated[Principal, Depends(guard("user:manage"))]

    @router.post("/api/auth/login", summary="Log in: a token and an HttpOnly session cookie")
    def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        result = auth.login(
            body.username,
            body.password,
            source=client_address(request),
            user_agent=request.headers.get("user-agent"),
        )
        return _session_answer(request, response, result)

    @router.post("/api/auth/logout", summary="End this session")
    def logout(request: Request, response: Response, principal: Me) -> dict[str, str]:
        auth.logout(principal, source=client_address(request))
        clear_session_cookie(request, response)
        return {"status": "logged out"}

    @router.get("/api/auth/me", summary="Who am I")
    def whoami(principal: Me) -> dict[str, Any]:
        user = auth.get_user(principal.username).as_dict()
        return {**user, "session_expires_at": principal.expires_at}

    @router.post("/api/auth/password", summary="Change my password (opens a new session)")
    def change_password(
        body: PasswordChange,
        request: Request,
        response: Response,
        principal: Me,
    ) -> dict[str, Any]:
        result = auth.change_own_password(
            principal,
            body.current_password,
            body.new_password,
            source=client_address(request),
            user_agent=request.headers.get("user-agent"),
        )
        return _session_answer(request, response, result)

    @router.put("/api/auth/me/language", summary="Set my language")
    def set_language(body: LanguageBody, request: Request, principal: Me) -> dict[str, Any]:
        user = auth.update_user(
            principal.username,
            language=body.language,
            actor=principal.actor,
            source=client_address(request),
        )
        return user.as_dict()

    @router.get("/api/users", summary="List users")
    def list_users(_: Admin) -> list[dict[str, Any]]:
        return [user.as_dict() for user in auth.list_users()]

    @router.post("/api/users", summary="Create a user", status_code=201)
    def create_user(body: NewUser, request: Request, principal: Admin) -> dict[str, Any]:
        password = body.password or generate_password()
        user = auth.create_user(
            body.username,
            body.role,
            password,
            display_name=body.display_name,
            language=body.language,
            actor=principal.actor,
            source=client_address(request),
        )
        answer = user.as_dict()
        if body.password is None:
            answer["password"] = password
        return answer

    @router.patch("/api/users/{username}", summary="Change a user's role, language, state")
    def update_user(
        username: str, body: UserChange, request: Request, principal: Admin
    ) -> dict[str, Any]:
        user = auth.update_user(
            username,
            **body.model_dump(exclude_none=True),
            actor=principal.actor,
            source=client_address(request),
        )
        return user.as_dict()

    @router.post("/api/users/{username}/password", summary="Reset a user's password")
    def reset_password(
        username: str,
        request: Request,
        principal: Admin,
        body: PasswordReset | None = None,
    ) -> dict[str, Any]:
        password = (body.password if body else None) or generate_password()
        user = auth.set_password(
            username, password, actor=principal.actor, source=client_address(request)
        )
        answer = user.as_dict()
        if body is None or body.password is None:
            answer["password"] = password
        return answer

    @router.get("/api/sessions", summary="List live sessions")
    def list_sessions(_: Admin) -> list[dict[str, Any]]:
        return [session.as_dict() for session in auth.list_sessions()]

    @router.delete("/api/sessions/{session_id}", summary="End a session")
    def revoke_session(session_id: str, request: Request, principal: Admin) -> dict[str, str]:
        auth.revoke_session(session_id, actor=principal.actor, source=client_address(request))
        return {"status": "revoked"}

    return router
