"""The DICOMweb edge: QIDO-RS, WADO-RS, STOW-RS and WADO-URI under ``/dicom-web`` and ``/wado``.

Owns HTTP parsing, content negotiation, multipart encoding and the mapping of domain outcomes
to HTTP statuses and DICOM failure reasons. May import: archive, index, dicom, errors, config.
Routes call one archive or query function each; no SQL and no loops over data sets here.

References
----------
PS3.18 (Web Services).
"""

from klinika.dicomweb.routes import create_dicomweb_router, create_wado_uri_router

__all__ = ["create_dicomweb_router", "create_wado_uri_router"]
