"""The ASGI application: composition of the routers, middleware, error mapping, health.

Owns :func:`create_app` and the HTTP API of every room that is not itself a protocol, one
module per room (``web/auth.py``, ``web/audit.py``, ``web/workflow.py``, ``web/management.py``,
``web/reports.py``, ``web/viewer.py``; pages in ``web/pages/``). DICOMweb and FHIR own
their routers. May import: runtime and every room below it.
"""

from klinika.web.app import create_app

__all__ = ["create_app"]
