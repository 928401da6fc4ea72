"""The ASGI application: composition of the routers, middleware, error mapping, health.

Owns :func:`create_app`. May import: runtime and every room that has routes.
"""

from klinika.web.app import create_app

__all__ = ["create_app"]
