"""The audit tests use the installations of the auth tests."""

from tests.auth.conftest import install, site  # noqa: F401
