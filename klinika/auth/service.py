"""The auth service: accounts, login with lockout, sessions, and the one permission check."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from klinika.audit import Actor, AuditTrail, Outcome
from klinika.auth import passwords
from klinika.auth.errors import (
    Forbidden,
    InvalidAccount,
    LoginThrottled,
    PasswordChangeRequired,
    PasswordRejected,
    Unauthenticated,
    UnknownUser,
    UserExists,
)
from klinika.auth.models import (
    AuthPolicy,
    LoginResult,
    Principal,
    Session,
    User,
)
from klinika.auth.nodes import NodeRegistry
from klinika.auth.peers import LOCAL_ANY, SERVICE_ACTIONS, DicomPeer, authorize_ae
from klinika.auth.permissions import USER_ROLES, Role, is_allowed
from klinika.auth.schema import login_failures, sessions, users
from klinika.auth.tokens import TokenClaims, TokenCodec
from klinika.config import PasswordHashProfile
from klinika.db import Database
from klinika.i18n import AUTO_LANGUAGE, USER_LANGUAGES

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_STALE_FAILURES = 86400
#: ``login_failures`` keys counting every address of an account / every account of an
#: address (neither is a possible username or address).
ANY_SOURCE = "*"
ANY_USER = "*"


#: Ended sessions (expired or revoked) are forgotten this long after their end.
ENDED_SESSIONS_KEPT = 86400
#: A session's last activity is written at most this often (seconds).
ACTIVITY_RESOLUTION = 60


def backoff(extra_failures: int, first: int, longest: int) -> int:
    """Seconds of the lock after ``extra_failures`` failures beyond the threshold: ``first``,
    doubling with each, at most ``longest``."""
    return int(min(longest, first * 2 ** min(extra_failures, 32)))


def normalize_username(username: str) -> str:
    return username.strip().lower()[:64]


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        language=row.language,
        active=bool(row.active),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        password_changed_at=row.password_changed_at,
        must_change_password=bool(row.must_change_password),
    )


class AuthService:
    """Users, sessions and permissions of one installation.

    Trust boundary: ``login`` and ``authenticate`` take untrusted input from the network;
    everything else expects an already authorised caller (the guard or the CLI) and records
    who did it in the audit trail.
    """

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        codec: TokenCodec,
        policy: AuthPolicy | None = None,
        *,
        peers: Iterable[DicomPeer] = LOCAL_ANY,
        nodes: NodeRegistry | None = None,
        clock: Callable[[], float] = time.time,
        principal_cache_seconds: float = 2.0,
    ) -> None:
        self.database = database
        self._principals: dict[str, tuple[float, Principal]] = {}
        self._principal_ttl = principal_cache_seconds
        self.audit = audit
        self.codec = codec
        self.policy = policy or AuthPolicy()
        self._peers = tuple(peers)
        #: the known DICOM nodes; without it, ``peers`` is the fixed list given
        self.nodes = nodes
        self._clock = clock
        self._hash_slots = threading.BoundedSemaphore(self.policy.max_concurrent_hashes)

    @property
    def peers(self) -> tuple[DicomPeer, ...]:
        """The calling AEs admitted now (the node registry's, read with its short cache)."""
        return self.nodes.peers() if self.nodes is not None else self._peers

    def _now(self) -> int:
        return int(self._clock())

    @property
    def _profile(self) -> PasswordHashProfile:
        return self.policy.password_hash_profile

    def _write(self) -> Any:
        """A write transaction. Any change to users or sessions empties the principal cache,
        so a revocation or a role change applies at once in this process (and within
        ``principal_cache_seconds`` in other workers)."""
        self._principals.clear()
        return self.database.writer.begin()

    # -------------------------------------------------------------- accounts
    def create_user(
        self,
        username: str,
        role: str,
        password: str,
        *,
        display_name: str = "",
        language: str = AUTO_LANGUAGE,
        actor: Actor | None = None,
        source: str | None = None,
        must_change_password: bool = False,
    ) -> User:
        """Create an active account (``must_change_password`` for a generated password: the
        user may do nothing but change it).

        Raises
        ------
        InvalidAccount
            Bad username, role, language or a password that breaks the rules.
        UserExists
            The username is taken.
        """
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise InvalidAccount(
                "a username is 1-64 characters: lowercase letters, digits, '.', '_', '@', '-'"
            )
        self._check_fields(role=role, language=language, display_name=display_name)
        passwords.check_policy(
            password, username=username, min_length=self.policy.password_min_length
        )
        now = self._now()
        row = {
            "username": username,
            "display_name": display_name.strip(),
            "role": role,
            "language": language,
            "active": True,
            "password_hash": self._hash(password),
            "password_changed_at": now,
            "created_at": now,
            "must_change_password": must_change_password,
        }
        try:
            with self._write() as connection:
                connection.execute(sa.insert(users).values(row))
        except sa.exc.IntegrityError as exc:
            raise UserExists(f"user {username} already exists") from exc
        self._record(actor, "user:create", source, {"user": username, "role": role})
        return self.get_user(username)

    def create_first_admin(self, username: str = "admin") -> str | None:
        """If there are no users yet, create an admin with a generated password and return
        that password (to print once); otherwise do nothing and return None. For
        ``klinika demo``: never a fixed default password."""
        with self.database.reader.connect() as connection:
            if connection.execute(sa.select(sa.func.count()).select_from(users)).scalar_one():
                return None
        password = passwords.generate_password()
        self.create_user(
            username, Role.ADMIN, password, display_name="Administrator", must_change_password=True
        )
        return password

    def get_user(self, username: str) -> User:
        with self.database.reader.connect() as connection:
            row = connection.execute(
                sa.select(users).where(users.c.username == normalize_username(username))
            ).one_or_none()
        if row is None:
            raise UnknownUser(f"no user {username}")
        return _user(row)

    def list_users(self) -> list[User]:
        with self.database.reader.connect() as connection:
            rows = connection.execute(sa.select(users).order_by(users.c.username)).all()
        return [_user(row) for row in rows]

    def update_user(
        self,
        username: str,
        *,
        role: str | None = None,
        language: str | None = None,
        active: bool | None = None,
        display_name: str | None = None,
        actor: Actor | None = None,
        source: str | None = None,
    ) -> User:
        """Change role, language, active flag or display name. Disabling a user revokes all
        their sessions; the last active admin cannot be disabled or demoted."""
        self._check_fields(role=role, language=language, display_name=display_name)
        changes: dict[str, Any] = {
            name: value
            for name, value in {
                "role": role,
                "language": language,
                "active": active,
                "display_name": display_name.strip() if display_name is not None else None,
            }.items()
            if value is not None
        }
        user = self.get_user(username)
        if not changes:
            return user
        with self._write() as connection:
            losing_admin = (
                user.role == Role.ADMIN
                and user.active
                and (
                    changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("active") is False
                )
            )
            if losing_admin and self._other_active_admins(connection, user.id) == 0:
                raise InvalidAccount("the last active admin cannot be disabled or demoted")
            connection.execute(sa.update(users).where(users.c.id == user.id).values(changes))
            if changes.get("active") is False:
                self._revoke_all(connection, user.id)
        details = {"user": user.username, **changes}
        self._record(actor, "user:update", source, details)
        return self.get_user(username)

    def set_password(
        self,
        username: str,
        new_password: str,
        *,
        actor: Actor | None = None,
        source: str | None = None,
        must_change_password: bool = False,
    ) -> User:
        """Set a password (admin reset, CLI, or the user's own change): revokes every session
        of the user and clears their login lockouts. ``must_change_password`` for a generated
        one."""
        user = self.get_user(username)
        passwords.check_policy(
            new_password, username=user.username, min_length=self.policy.password_min_length
        )
        with self._write() as connection:
            connection.execute(
                sa.update(users)
                .where(users.c.id == user.id)
                .values(
                    password_hash=self._hash(new_password),
                    password_changed_at=self._now(),
                    must_change_password=must_change_password,
                )
            )
            self._revoke_all(connection, user.id)
            connection.execute(
                sa.delete(login_failures).where(login_failures.c.username == user.username)
            )
        self._record(actor, "user:password", source, {"user": user.username})
        return user

    def change_own_password(
        self,
        principal: Principal,
        current_password: str,
        new_password: str,
        *,
        source: str | None = None,
        user_agent: str | None = None,
    ) -> LoginResult:
        """Check the current password, set the new one, revoke every session (this one
        included) and open a fresh session for the caller."""
        with self.database.reader.connect() as connection:
            stored = connection.execute(
                sa.select(users.c.password_hash).where(users.c.id == principal.user_id)
            ).scalar_one_or_none()
        with self._hashing():
            correct = passwords.verify_password(stored, current_password, self._profile)
        if not correct:
            self._record(principal.actor, "user:password", source, {}, outcome=Outcome.FAILURE)
            raise PasswordRejected("the current password is not correct", "wrong-current")
        self.set_password(principal.username, new_password, actor=principal.actor, source=source)
        return self._open_session(self.get_user(principal.username), source, user_agent)

    @staticmethod
    def _check_fields(*, role: str | None, language: str | None, display_name: str | None) -> None:
        if role is not None and role not in USER_ROLES:
            raise InvalidAccount(f"role must be one of {', '.join(USER_ROLES)}, not {role!r}")
        if language is not None and language not in USER_LANGUAGES:
            raise InvalidAccount(f"language must be one of {', '.join(USER_LANGUAGES)}")
        if display_name is not None and len(display_name) > 128:
            raise InvalidAccount("a display name has at most 128 characters")

    @staticmethod
    def _other_active_admins(connection: sa.Connection, user_id: int) -> int:
        return connection.execute(
            sa.select(sa.func.count())
            .select_from(users)
            .where(
                users.c.role == Role.ADMIN.value, users.c.active.is_(True), users.c.id != user_id
            )
        ).scalar_one()

    # ----------------------------------------------------------------- login
    @contextmanager
    def _hashing(self) -> Iterator[None]:
        """One of the ``max_concurrent_hashes`` slots for an argon2id hash (64 MiB each): a
        burst of logins waits here instead of exhausting memory; past the wait, 429."""
        if not self._hash_slots.acquire(timeout=self.policy.hash_wait_seconds):
            raise LoginThrottled("the server is busy checking passwords; try again", 1)
        try:
            yield
        finally:
            self._hash_slots.release()

    def _hash(self, password: str) -> str:
        with self._hashing():
            return passwords.hash_password(password, self._profile)

    def login(
        self,
        username: str,
        password: str,
        *,
        source: str | None = None,
        user_agent: str | None = None,
    ) -> LoginResult:
        """Check the password and open a session.

        Failed logins are counted three ways: per (username, source address), per account
        (every address) and per address (every account). Past its threshold each key is
        locked with exponential back-off (OWASP ASVS 2.2.1); attempts during a lock are
        refused unchecked and do not extend it. The account-wide lock is capped at
        ``lockout_seconds``, so an attacker rotating addresses slows the owner down but never
        locks them out for good; ``klinika user unlock`` and a password reset lift every lock.
        A disabled account answers exactly like a wrong password.

        Raises
        ------
        LoginThrottled
            A key of this attempt is locked, or too many passwords are being checked at once.
        Unauthenticated
            Wrong username or password, or a disabled account.
        """
        name, where = normalize_username(username), (source or "")[:64]
        now = self._now()
        attempt = Actor(name or "-", "anonymous")
        locked_until = self._locked_until(name, where)
        if locked_until > now:
            self._record(
                attempt, "auth:login", source, {"reason": "locked"}, outcome=Outcome.FAILURE
            )
            raise LoginThrottled(
                "too many failed logins; try again later", retry_after=locked_until - now
            )
        with self.database.reader.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.username == name)).one_or_none()
        with self._hashing():
            stored = row.password_hash if row else None
            correct = passwords.verify_password(stored, password, self._profile)
        if not correct or row is None or not row.active:
            self._count_failure(name, where, self._now())  # the lock starts now, after the hash
            reason = "disabled" if correct else "bad-credentials"
            self._record(attempt, "auth:login", source, {"reason": reason}, outcome=Outcome.FAILURE)
            raise Unauthenticated("wrong username or password")
        with self._write() as connection:
            connection.execute(
                sa.delete(login_failures).where(
                    login_failures.c.username == name,
                    login_failures.c.source.in_([where, ANY_SOURCE]),
                )
            )
            values: dict[str, Any] = {"last_login_at": now}
            if passwords.needs_rehash(row.password_hash, self._profile):
                values["password_hash"] = self._hash(password)
            connection.execute(sa.update(users).where(users.c.id == row.id).values(values))
        user = _user(row)
        result = self._open_session(user, source, user_agent)
        self._record(Actor(user.username, user.role), "auth:login", source, {})
        return result

    def _keys(self, username: str, source: str) -> list[tuple[str, str, int, int, int]]:
        """(username, source, threshold, first lock, longest lock) of the counted keys."""
        policy = self.policy
        return [
            (username, source, policy.max_failures, policy.lockout_seconds, policy.lockout_max),
            (username, ANY_SOURCE, policy.account_max_failures, 1, policy.lockout_seconds),
            (
                ANY_USER,
                source,
                policy.account_max_failures,
                policy.lockout_seconds,
                policy.lockout_max,
            ),
        ]

    def _locked_until(self, username: str, source: str) -> int:
        keys = [(u, s) for u, s, *_ in self._keys(username, source)]
        with self.database.reader.connect() as connection:
            values = connection.execute(
                sa.select(login_failures.c.locked_until).where(
                    sa.tuple_(login_failures.c.username, login_failures.c.source).in_(keys)
                )
            ).scalars()
            return max((int(v or 0) for v in values), default=0)

    def _count_failure(self, username: str, source: str, now: int) -> None:
        with self._write() as connection:
            connection.execute(
                sa.delete(login_failures).where(
                    login_failures.c.updated_at < now - _STALE_FAILURES,
                    login_failures.c.locked_until < now,
                )
            )
            for user_key, source_key, threshold, first, longest in self._keys(username, source):
                key = (login_failures.c.username == user_key, login_failures.c.source == source_key)
                failures = connection.execute(
                    sa.select(login_failures.c.failures).where(*key)
                ).scalar_one_or_none()
                if failures is None:
                    connection.execute(
                        sa.insert(login_failures).values(
                            username=user_key,
                            source=source_key,
                            failures=0,
                            locked_until=0,
                            updated_at=now,
                        )
                    )
                    failures = 0
                failures += 1
                values = {"failures": failures, "updated_at": now}
                if failures >= threshold:
                    values["locked_until"] = now + backoff(failures - threshold, first, longest)
                connection.execute(sa.update(login_failures).where(*key).values(values))

    def unlock(
        self, username: str, *, actor: Actor | None = None, source: str | None = None
    ) -> int:
        """Lift every login lock and failure count of an account (all addresses); returns how
        many were lifted. Raises :class:`UnknownUser`."""
        user = self.get_user(username)
        with self._write() as connection:
            lifted = connection.execute(
                sa.delete(login_failures).where(login_failures.c.username == user.username)
            ).rowcount
        self._record(actor, "user:unlock", source, {"user": user.username, "lifted": lifted})
        return int(lifted or 0)

    # -------------------------------------------------------------- sessions
    def _open_session(self, user: User, source: str | None, user_agent: str | None) -> LoginResult:
        now = self._now()
        session_id = secrets.token_hex(16)
        expires_at = now + self.policy.token_seconds(user.role)
        with self._write() as connection:
            self._prune_sessions(connection, now)
            connection.execute(
                sa.insert(sessions).values(
                    id=session_id,
                    user_id=user.id,
                    created_at=now,
                    expires_at=expires_at,
                    source=(source or "")[:256] or None,
                    user_agent=(user_agent or "")[:256] or None,
                )
            )
        token = self.codec.encode(
            TokenClaims(user.username, session_id, user.role, now, expires_at)
        )
        return LoginResult(token=token, expires_at=expires_at, user=user)

    def authenticate(self, token: str) -> Principal:
        """The principal behind a token: valid signature, live session, active user.

        Raises
        ------
        Unauthenticated
            Forged, expired or revoked token, or a disabled user.
        """
        cached = self.cached_principal(token)
        if cached is not None:
            return cached
        now = time.monotonic()
        principal = self._load_principal(token)
        if len(self._principals) > 10_000:
            self._principals.clear()
        self._principals[token] = (now, principal)
        return principal

    def cached_principal(self, token: str) -> Principal | None:
        """The principal :meth:`authenticate` checked for this token less than the cache's
        lifetime ago (and whose session has not expired since), else None: no I/O, so the
        HTTP gate calls it on the event loop and goes to a thread only when it misses."""
        cached = self._principals.get(token)
        if cached is None or time.monotonic() - cached[0] >= self._principal_ttl:
            return None
        return cached[1] if cached[1].expires_at > self._now() else None

    def _load_principal(self, token: str) -> Principal:
        claims = self.codec.decode(token)
        with self.database.reader.connect() as connection:
            row = connection.execute(
                sa.select(sessions, users)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.id == claims.session_id)
            ).one_or_none()
        if row is None or row.username != claims.username:
            raise Unauthenticated("unknown session")
        if row.revoked_at is not None:
            raise Unauthenticated("the session was ended; log in again")
        if row.expires_at <= self._now():
            raise Unauthenticated("the session has expired; log in again")
        if not row.active:
            raise Unauthenticated("this account is disabled")
        self._seen(row.id, row.last_seen_at)
        return Principal(
            user_id=row.user_id,
            username=row.username,
            role=Role(row.role),
            display_name=row.display_name,
            language=row.language,
            session_id=row.id,
            expires_at=row.expires_at,
            must_change_password=bool(row.must_change_password),
        )

    def logout(self, principal: Principal, *, source: str | None = None) -> None:
        with self._write() as connection:
            connection.execute(
                sa.update(sessions)
                .where(sessions.c.id == principal.session_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
        self._record(principal.actor, "auth:logout", source, {})

    def list_sessions(self, *, include_ended: bool = False) -> list[Session]:
        """Sessions, newest first; by default only those still valid."""
        query = sa.select(sessions, users.c.username).join(users, users.c.id == sessions.c.user_id)
        if not include_ended:
            query = query.where(
                sessions.c.revoked_at.is_(None), sessions.c.expires_at > self._now()
            )
        with self.database.reader.connect() as connection:
            rows = connection.execute(query.order_by(sessions.c.created_at.desc())).all()
        return [
            Session(
                r.id,
                r.username,
                r.created_at,
                r.expires_at,
                r.revoked_at,
                r.source,
                r.user_agent,
                r.last_seen_at,
            )
            for r in rows
        ]

    def revoke_session(
        self, session_id: str, *, actor: Actor | None = None, source: str | None = None
    ) -> None:
        """End one session. Raises :class:`UnknownUser` if there is no such session."""
        with self._write() as connection:
            found = connection.execute(
                sa.select(sessions.c.id).where(sessions.c.id == session_id)
            ).one_or_none()
            if found is None:
                raise UnknownUser(f"no session {session_id}")
            connection.execute(
                sa.update(sessions)
                .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
        self._record(actor, "session:revoke", source, {"session": session_id})

    @staticmethod
    def _prune_sessions(connection: sa.Connection, now: int) -> int:
        """Forget sessions that ended (expired or revoked) more than
        :data:`ENDED_SESSIONS_KEPT` seconds ago: every login prunes, so they do not pile up.
        Their ends stay in the audit trail."""
        cutoff = now - ENDED_SESSIONS_KEPT
        pruned = connection.execute(
            sa.delete(sessions).where(
                sa.or_(sessions.c.expires_at < cutoff, sessions.c.revoked_at < cutoff)
            )
        ).rowcount
        return int(pruned or 0)

    def _seen(self, session_id: str, last_seen_at: int | None) -> None:
        """Note a session's activity, at most once every :data:`ACTIVITY_RESOLUTION` seconds
        (a write outside ``_write``: it changes no principal)."""
        now = self._now()
        if last_seen_at is not None and now - last_seen_at < ACTIVITY_RESOLUTION:
            return
        try:
            with self.database.writer.begin() as connection:
                connection.execute(
                    sa.update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now)
                )
        except sa.exc.OperationalError:  # a busy database: the next request notes it
            return

    def _revoke_all(self, connection: sa.Connection, user_id: int) -> None:
        connection.execute(
            sa.update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=self._now())
        )

    # ----------------------------------------------------------- permissions
    def authorize(self, principal: Principal, action: str) -> None:
        """THE check for users: may this principal do this action?

        Raises
        ------
        Forbidden
            The role may not (reads :data:`klinika.auth.permissions.PERMISSIONS`).
        """
        if not is_allowed(principal.role, action):
            raise Forbidden(f"the role {principal.role} may not do {action}", action)
        if principal.must_change_password and action != "account:self":
            raise PasswordChangeRequired(
                "this account's password was generated for it: change it first "
                "(POST /api/auth/password, or /account/password in the console)"
            )

    def authorize_ae(
        self,
        calling_ae: str,
        address: str,
        service: str,
        *,
        certified: bool = False,
        peers: Iterable[DicomPeer] | None = None,
        subject: Callable[[], Mapping[str, str | None]] | None = None,
    ) -> bool:
        """THE check for DICOM peers (see :mod:`klinika.auth.peers`): may this calling AE use
        ``service`` (``echo``, ``store``, ``find``, ``move``, ``get``)? A refusal is audited
        as the service's action, denied, with the calling AE and the service, and what
        ``subject()`` says the request was about (``study_uid``, ``patient_id`` …; asked only
        on a refusal)."""
        known = self.peers if peers is None else peers
        allowed = authorize_ae(known, calling_ae, address, service, certified=certified)
        if not allowed:
            self.audit.record(
                Actor(calling_ae.strip() or "-", Role.MODALITY),
                SERVICE_ACTIONS.get(service, service),
                Outcome.DENIED,
                source=f"{calling_ae.strip()}@{address}",
                details={"service": service},
                **(dict(subject()) if subject is not None else {}),
            )
        return allowed

    # ----------------------------------------------------------------- audit
    def _record(
        self,
        actor: Actor | None,
        action: str,
        source: str | None,
        details: Mapping[str, Any],
        *,
        outcome: Outcome = Outcome.SUCCESS,
    ) -> None:
        self.audit.record(
            actor or Actor.system(), action, outcome, source=source, details=dict(details)
        )
