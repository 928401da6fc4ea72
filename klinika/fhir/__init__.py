"""The FHIR R4 edge: a read API over what the archive holds and the signed reports.

Owns the ``/fhir`` routes (``CapabilityStatement``, ``Patient``, ``ImagingStudy``,
``Endpoint``, ``DiagnosticReport``, ``ServiceRequest`` for scheduled procedure steps), the
translation of FHIR search parameters into the ONE query engine's
:class:`~klinika.index.query.Query` (no second query path), the resources built from its
answers, and ``OperationOutcome`` errors. May import: archive, index, dicom, reports,
workflow, auth, config, errors. Routes parse, call one :class:`FhirService` method, answer.

Trust boundary: every search parameter and resource id arrives from the network; they are
checked here (unknown parameters, modifiers and malformed values are refused with 400) before
anything reaches the query engine, which checks them again.

References
----------
HL7 FHIR R4 (4.0.1): RESTful API (http.html), Search (search.html), ImagingStudy,
DiagnosticReport, Patient, Endpoint, CapabilityStatement, OperationOutcome.
"""

from klinika.fhir.outcome import FHIR_JSON, is_fhir_path, operation_outcome
from klinika.fhir.routes import create_fhir_router
from klinika.fhir.service import FhirService

__all__ = ["FHIR_JSON", "FhirService", "create_fhir_router", "is_fhir_path", "operation_outcome"]
