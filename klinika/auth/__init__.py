"""Users, passwords, tokens, sessions, THE permission matrix and THE permission check.

Owns :class:`AuthService` (accounts, login with lockout, sessions, ``authorize``,
``authorize_ae``), :data:`PERMISSIONS`, the ``users`` / ``sessions`` / ``login_failures`` tables,
and the HTTP pieces every HTTP room shares (:class:`Guard`, :class:`SessionGate`, cookies, in
:mod:`klinika.auth.http`); its routes are in :mod:`klinika.web.auth`. May import: db, audit,
errors, config.

Trust boundary: tokens, cookies, usernames and passwords arrive from the network; only
:meth:`AuthService.login` and :meth:`AuthService.authenticate` accept them. Passwords are
hashed with argon2id; tokens are HS256 JWTs whose ``jti`` names a server-side session row, so
logout, disabling a user and password changes take effect at once.
"""

from klinika.auth.errors import (
    Forbidden,
    InvalidAccount,
    LoginThrottled,
    Unauthenticated,
    UnknownUser,
    UserExists,
)
from klinika.auth.models import AuthPolicy, LoginResult, Principal, Session, User
from klinika.auth.peers import (
    LOCAL_ANY,
    SERVICE_ACTIONS,
    DicomPeer,
    authorize_ae,
    peers_from_settings,
)
from klinika.auth.permissions import ACTIONS, PERMISSIONS, USER_ROLES, Role, is_allowed
from klinika.auth.secret import load_jwt_secret
from klinika.auth.service import AuthService
from klinika.auth.tokens import TokenCodec

__all__ = [
    "ACTIONS",
    "LOCAL_ANY",
    "PERMISSIONS",
    "SERVICE_ACTIONS",
    "USER_ROLES",
    "AuthPolicy",
    "AuthService",
    "DicomPeer",
    "Forbidden",
    "InvalidAccount",
    "LoginResult",
    "LoginThrottled",
    "Principal",
    "Role",
    "Session",
    "TokenCodec",
    "Unauthenticated",
    "UnknownUser",
    "User",
    "UserExists",
    "authorize_ae",
    "is_allowed",
    "load_jwt_secret",
    "peers_from_settings",
]
