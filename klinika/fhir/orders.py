"""A FHIR ``ServiceRequest`` (an imaging order) read into the scheduled procedure step it asks
for: what ``POST /fhir/ServiceRequest`` hands to the one :class:`klinika.workflow.Schedule`.

The patient is either a ``contained`` Patient (``subject.reference`` ``#id``: identifier, name,
birth date, gender, as an ordering system sends a new patient) or a Patient we hold
(``Patient/<id>``, read from the index). The fields read mirror what
:func:`klinika.fhir.resources.service_request` writes, so a request read back is the order sent.

References
----------
FHIR R4 servicerequest.html, references.html §2.3.0.4 (contained resources); PS3.4 K.6.1.2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from klinika.errors import InvalidQuery
from klinika.fhir.params import DICOM_MODALITY_SYSTEM
from klinika.fhir.resources import V2_0203, Json
from klinika.workflow import StepDetails

#: FHIR gender -> DICOM PatientSex
_SEX = {"male": "M", "female": "F", "other": "O", "unknown": ""}
_SCHEMES = {"http://snomed.info/sct": "SCT", "http://loinc.org": "LN", DICOM_MODALITY_SYSTEM: "DCM"}
_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?")

#: The patient a ``Patient/<id>`` reference names, as (PatientID, PN, birth date, sex);
#: raises NotFound for a patient we do not hold.
PatientLookup = Callable[[str], tuple[str, str, str, str]]


class InvalidOrder(InvalidQuery):
    """A ServiceRequest that cannot become a scheduled step; the message names the field."""


def order_details(resource: Any, lookup: PatientLookup) -> StepDetails:
    """The scheduled step ``resource`` asks for (validated by :meth:`StepDetails.checked`
    when the schedule creates it).

    Raises
    ------
    InvalidOrder
        Not a ServiceRequest, or a field needed is missing or of the wrong shape.
    """
    if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
        raise InvalidOrder("the body must be a ServiceRequest resource")
    if resource.get("intent") not in ("order", "original-order", "plan", None):
        raise InvalidOrder(f"intent {resource.get('intent')!r} is not an order")
    patient_id, name, birth_date, sex = _patient(resource, lookup)
    date, time = _occurrence(resource.get("occurrenceDateTime"))
    code = resource.get("code") or {}
    coding = _first(code.get("coding"))
    return StepDetails(
        patient_id=patient_id,
        patient_name=name,
        patient_birth_date=birth_date,
        patient_sex=sex,
        modality=_modality(resource),
        start_date=date,
        start_time=time,
        accession_number=_accession(resource),
        requested_procedure_description=str(code.get("text") or coding.get("display") or ""),
        procedure_code_value=str(coding.get("code") or ""),
        procedure_code_scheme=_SCHEMES.get(str(coding.get("system") or ""), ""),
        procedure_code_meaning=str(coding.get("display") or ""),
        station_ae_title=str(_first(resource.get("locationCode")).get("text") or ""),
        performing_physician=_person(_first(resource.get("performer")).get("display")),
        referring_physician=_person((resource.get("requester") or {}).get("display")),
        step_description=str(_first(resource.get("note")).get("text") or ""),
    )


def _first(value: Any) -> Json:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}


def _patient(resource: Json, lookup: PatientLookup) -> tuple[str, str, str, str]:
    reference = str((resource.get("subject") or {}).get("reference") or "")
    if reference.startswith("Patient/"):
        return lookup(reference.removeprefix("Patient/"))
    if not reference.startswith("#"):
        raise InvalidOrder("subject must reference a contained Patient (#id) or Patient/<id>")
    contained = [
        item
        for item in resource.get("contained") or []
        if isinstance(item, dict)
        and item.get("resourceType") == "Patient"
        and item.get("id") == reference[1:]
    ]
    if not contained:
        raise InvalidOrder(f"subject {reference} names no contained Patient")
    patient = contained[0]
    patient_id = str(_first(patient.get("identifier")).get("value") or "")
    if not patient_id:
        raise InvalidOrder("the contained Patient has no identifier (the Patient ID)")
    name = _first(patient.get("name"))
    given = name.get("given") or []
    pn = "^".join((str(name.get("family") or ""), " ".join(str(g) for g in given if g))).rstrip("^")
    birth = str(patient.get("birthDate") or "").replace("-", "")
    return patient_id, pn, birth, _SEX.get(str(patient.get("gender") or "unknown"), "")


def _occurrence(value: Any) -> tuple[str, str]:
    found = _DATE_TIME.match(str(value or ""))
    if found is None:
        raise InvalidOrder("occurrenceDateTime (when the procedure is scheduled) is required")
    year, month, day, hour, minute, second = found.groups()
    time = f"{hour}{minute}{second or '00'}" if hour else ""
    return f"{year}{month}{day}", time


def _modality(resource: Json) -> str:
    for detail in resource.get("orderDetail") or []:
        for coding in (detail or {}).get("coding") or []:
            if coding.get("system") == DICOM_MODALITY_SYSTEM and coding.get("code"):
                return str(coding["code"])
    raise InvalidOrder(f"orderDetail needs a coding of {DICOM_MODALITY_SYSTEM} (the modality)")


def _accession(resource: Json) -> str:
    """The identifier typed ACSN (v2-0203), as ``service_request`` writes it."""
    for identifier in resource.get("identifier") or []:
        for coding in (identifier.get("type") or {}).get("coding") or []:
            if coding.get("code") == "ACSN" and coding.get("system", V2_0203) == V2_0203:
                return str(identifier.get("value") or "")
    return ""  # the schedule makes one


def _person(display: Any) -> str:
    """A display name as DICOM PN: "Family, Given" or "Family Given" (the order
    ``service_request`` writes names in)."""
    text = str(display or "").strip()
    family, comma, given = text.partition(",")
    if not comma:
        family, _, given = text.partition(" ")
    return f"{family.strip()}^{given.strip()}".rstrip("^")
