"""The CapabilityStatement at ``/fhir/metadata``: what this server reads and searches.

References
----------
FHIR R4 capabilitystatement.html, http.html §3.1.0.11 (capabilities interaction).
"""

from __future__ import annotations

from typing import Any

from klinika import __version__

#: resource type -> (search parameter, FHIR search type) pairs
SEARCH_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "Patient": (
        ("_id", "token"),
        ("identifier", "token"),
        ("name", "string"),
        ("family", "string"),
        ("given", "string"),
        ("birthdate", "date"),
        ("gender", "token"),
    ),
    "ImagingStudy": (
        ("_id", "token"),
        ("patient", "reference"),
        ("subject", "reference"),
        ("identifier", "token"),
        ("started", "date"),
        ("modality", "token"),
    ),
    "DiagnosticReport": (
        ("_id", "token"),
        ("patient", "reference"),
        ("subject", "reference"),
        ("status", "token"),
    ),
    "ServiceRequest": (
        ("_id", "token"),
        ("patient", "reference"),
        ("subject", "reference"),
        ("identifier", "token"),
        ("status", "token"),
        ("occurrence", "date"),
        ("modality", "token"),
    ),
    "Endpoint": (),
}
#: Resource types that may also be created (POST): an order becomes a scheduled step.
CREATABLE = frozenset({"ServiceRequest"})


def capability_statement(fhir_base: str, published: str) -> dict[str, Any]:
    """The server's CapabilityStatement (``published``: its date, YYYY-MM-DD)."""
    resources = []
    for resource_type, params in SEARCH_PARAMS.items():
        entry: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
        }
        if resource_type in CREATABLE:
            entry["interaction"].append({"code": "create"})
        if params:
            entry["searchParam"] = [{"name": name, "type": kind} for name, kind in params]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "Klinika PACS",
        "kind": "instance",
        "software": {"name": "Klinika PACS", "version": __version__},
        "implementation": {"description": "Klinika PACS FHIR read API", "url": fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only but for ServiceRequest create (an imaging order becomes a "
                    "scheduled procedure step). Log in at /api/auth/login and send the token as "
                    "'Authorization: Bearer', or the session cookie. Paging: _count and _offset."
                ),
                "security": {
                    "cors": False,
                    "description": "Bearer token (JWT) or the Klinika session cookie",
                },
                "resource": resources,
            }
        ],
    }
