"""Sessions remember their last activity and ended ones are forgotten (they do not pile up);
a user's language starts as ``auto`` (the browser's) and can return to it; the password
policy names the rule it applies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from klinika.auth.errors import InvalidAccount, PasswordRejected
from klinika.auth.service import ACTIVITY_RESOLUTION, ENDED_SESSIONS_KEPT
from tests.auth.conftest import PASSWORDS, Installation
from tests.conftest import Clock


def test_last_activity_is_noted_and_ended_sessions_are_pruned(
    install: Callable[..., Installation],
) -> None:
    clock = Clock()
    site = install(clock=clock)
    auth = site.runtime.auth
    first = auth.login("doctor", PASSWORDS["doctor"], source="10.0.0.1", user_agent="Firefox/1")
    auth.authenticate(first.token)
    (session,) = auth.list_sessions()
    assert session.last_seen_at == int(clock()) and session.user_agent == "Firefox/1"
    clock.advance(ACTIVITY_RESOLUTION + 5)
    auth._principals.clear()  # as another worker, or after principal_cache_seconds
    auth.authenticate(first.token)
    assert auth.list_sessions()[0].last_seen_at == int(clock())

    auth.revoke_session(session.id)
    assert auth.list_sessions() == []
    assert len(auth.list_sessions(include_ended=True)) == 1  # kept a while, for the record
    clock.advance(ENDED_SESSIONS_KEPT + 60)
    auth.login("doctor", PASSWORDS["doctor"])  # each login prunes
    ended = [s for s in auth.list_sessions(include_ended=True) if s.revoked_at is not None]
    assert ended == []
    assert len(auth.list_sessions()) == 1


def test_new_users_follow_the_browser_and_may_return_to_it(
    install: Callable[..., Installation],
) -> None:
    auth = install().runtime.auth
    user = auth.create_user("newdoc", "doctor", "a-long-enough-password-1")
    assert user.language == "auto"
    assert auth.update_user("newdoc", language="ru").language == "ru"
    assert auth.update_user("newdoc", language="auto").language == "auto"
    with pytest.raises(InvalidAccount):
        auth.update_user("newdoc", language="xx")


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short", "too-short"),
        ("aaaaaaaaaaaaaaaa", "too-few-characters"),
        ("newdocnewdocnewdoc", "username"),
    ],
)
def test_the_password_policy_names_its_rule(
    install: Callable[..., Installation], password: str, rule: str
) -> None:
    auth = install().runtime.auth
    with pytest.raises(PasswordRejected) as refused:
        auth.create_user("newdoc", "doctor", password)
    assert refused.value.rule == rule
