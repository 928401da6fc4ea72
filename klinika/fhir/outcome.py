"""FHIR answers on the wire: the media type, ``_format`` and ``Accept`` negotiation, and
``OperationOutcome`` for every error (FHIR R4 http.html §3.1.0.4, operationoutcome.html)."""

from __future__ import annotations

import json
from typing import Any

from klinika.errors import KlinikaError, NotAcceptable

FHIR_JSON = "application/fhir+json"
#: Where the FHIR API lives; its errors are OperationOutcomes, not ``{"error": …}``.
FHIR_PREFIX = "/fhir"
#: ``_format`` values and Accept media types that mean JSON (R4 http.html §3.1.0.1.9).
_JSON_FORMATS = frozenset(
    {"json", "application/json", "application/fhir+json", "application/json+fhir", "fhir+json"}
)
_XML_FORMATS = frozenset(
    {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
)
_ANY = frozenset({"*/*", "application/*"})

#: HTTP status -> OperationOutcome issue type (R4 valueset-issue-type).
_ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


class ReadOnly(KlinikaError):
    """A write interaction (create, update, patch, delete) on this read-only API."""


def is_fhir_path(path: str) -> bool:
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")


def operation_outcome(status: int, message: str) -> dict[str, Any]:
    """The OperationOutcome telling why a request failed with ``status``."""
    code = _ISSUE_TYPES.get(status, "exception" if status >= 500 else "processing")
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error" if status < 500 else "fatal",
                "code": code,
                "diagnostics": message,
            }
        ],
    }


def fhir_bytes(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def negotiate(accept: str | None, format_param: str | None) -> None:
    """Refuse a request that wants anything but FHIR JSON (XML and others: 406).

    ``_format`` overrides ``Accept`` (R4 http.html §3.1.0.1.9); no ``Accept``, ``*/*`` or a
    list naming JSON anywhere is answered with ``application/fhir+json``.

    Raises
    ------
    NotAcceptable
        When only XML or other representations are acceptable.
    """
    if format_param:
        wanted = format_param.strip().lower()
        if wanted.split(";")[0].strip() in _JSON_FORMATS:
            return
        kind = "XML" if wanted in _XML_FORMATS else repr(format_param[:40])
        raise NotAcceptable(f"_format {kind} is not served: this server answers FHIR JSON only")
    if not accept or not accept.strip():
        return
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if types & (_JSON_FORMATS | _ANY):
        return
    raise NotAcceptable(
        f"Accept {accept[:80]!r} names no JSON type: this server answers {FHIR_JSON} only"
    )
