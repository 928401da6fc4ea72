"""The archive tests use the installations of the auth tests for the HTTP edge."""

from tests.auth.conftest import install, site  # noqa: F401
