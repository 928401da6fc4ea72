"""The argon2 parameter profiles: production keeps RFC 9106's cost; the test profile is cheap,
chosen only by a setting, and hashes made under one profile still verify under the other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from klinika.auth import passwords
from klinika.auth.schema import users
from klinika.config import load_settings
from klinika.errors import ConfigError
from klinika.runtime import Runtime
from tests.auth.conftest import Installation, make_settings

PRODUCTION_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"  # RFC 9106 low-memory, second choice
TEST_PREFIX = "$argon2id$v=19$m=8,t=1,p=1$"


def stored_hash(runtime: Runtime, username: str) -> str:
    with runtime.database.reader.connect() as connection:
        return str(
            connection.execute(
                sa.select(users.c.password_hash).where(users.c.username == username)
            ).scalar_one()
        )


def test_production_is_the_default_and_keeps_rfc_9106_parameters() -> None:
    assert load_settings(env={}).password_hash_profile == "production"
    assert passwords.hash_password("a-long-password").startswith(PRODUCTION_PREFIX)
    assert passwords.hash_password("a-long-password", "test").startswith(TEST_PREFIX)


def test_the_profile_comes_from_the_environment_and_typos_are_refused() -> None:
    env = {"KLINIKA_PASSWORD_HASH_PROFILE": "test"}
    assert load_settings(env=env).password_hash_profile == "test"
    with pytest.raises(ConfigError, match="password_hash_profile"):
        load_settings(env={"KLINIKA_PASSWORD_HASH_PROFILE": "fast"})


def test_an_installation_hashes_with_its_profile(
    install: Callable[..., Installation], tmp_path: Path
) -> None:
    cheap = install()  # the test fixtures choose the test profile
    assert stored_hash(cheap.runtime, "admin").startswith(TEST_PREFIX)
    settings = make_settings(tmp_path / "production", password_hash_profile="production")
    with Runtime(settings) as production:
        production.auth.create_user("pat", "doctor", "production-password-1")
        assert stored_hash(production, "pat").startswith(PRODUCTION_PREFIX)


def test_hashes_verify_across_profiles_and_a_login_rehashes_to_the_current_one(
    install: Callable[..., Installation],
) -> None:
    made_in_production = passwords.hash_password("from-production-1")
    assert passwords.verify_password(made_in_production, "from-production-1", "test")
    assert not passwords.verify_password(made_in_production, "wrong-password-1", "test")
    assert passwords.needs_rehash(made_in_production, "test")
    assert not passwords.needs_rehash(made_in_production, "production")

    site = install()
    site.runtime.auth.set_password("doctor", "from-production-1")
    with site.runtime.database.writer.begin() as connection:
        connection.execute(
            sa.update(users)
            .where(users.c.username == "doctor")
            .values(password_hash=made_in_production)
        )
    assert site.runtime.auth.login("doctor", "from-production-1", source="127.0.0.1")
    assert stored_hash(site.runtime, "doctor").startswith(TEST_PREFIX)
