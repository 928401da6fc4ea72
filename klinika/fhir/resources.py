"""FHIR R4 resources built from the query engine's DICOM JSON answers and from reports.

Pure functions: DICOM JSON (PS3.18 §F.2) in, FHIR JSON out. Dates become FHIR dates; a
date with a time becomes a dateTime with the study's TimezoneOffsetFromUTC, or the server's
local zone when the study names none (R4 datatypes.html#dateTime: a time needs a zone).

References
----------
FHIR R4 imagingstudy.html (and its DICOM mapping), patient.html, endpoint.html,
diagnosticreport.html; PS3.18 §F.2 (DICOM JSON).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from klinika.fhir.ids import patient_resource_id, text_resource_id
from klinika.fhir.params import DICOM_MODALITY_SYSTEM, DICOM_UID_SYSTEM
from klinika.workflow import ScheduledStep, StepStatus

ENDPOINT_ID = "dicomweb"
LOINC = "http://loinc.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
_GENDER = {"M": "male", "F": "female", "O": "other"}
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?")
_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})")

Json = dict[str, Any]


def first(match: Json, tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON object, or None."""
    values = match.get(tag, {}).get("Value")
    return values[0] if values else None


def values(match: Json, tag: str) -> list[Any]:
    return list(match.get(tag, {}).get("Value") or [])


def text(match: Json, tag: str) -> str | None:
    value = first(match, tag)
    return str(value).strip() or None if value is not None else None


# ------------------------------------------------------------------ dates
def fhir_date(value: str | None) -> str | None:
    """DICOM DA ``YYYYMMDD`` as a FHIR date; None for anything else."""
    found = _DATE.fullmatch((value or "").strip())
    if not found:
        return None
    try:
        return dt.date(*(int(g) for g in found.groups())).isoformat()
    except ValueError:
        return None


def fhir_date_time(date: str | None, time: str | None, offset: str | None) -> str | None:
    """DICOM DA + TM (+ TimezoneOffsetFromUTC) as a FHIR dateTime (a date alone if no time)."""
    day = fhir_date(date)
    if day is None:
        return None
    found = _TIME.match((time or "").strip().replace(":", ""))
    if not found:
        return day
    hour, minute, second = (int(g) if g else 0 for g in found.groups())
    try:
        local = dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, second=second)
    except ValueError:
        return day
    zone = _OFFSET.fullmatch((offset or "").strip())
    if zone:
        sign = -1 if zone[1] == "-" else 1
        delta = dt.timedelta(hours=int(zone[2]), minutes=int(zone[3]))
        local = local.replace(tzinfo=dt.timezone(sign * delta))
    else:
        local = local.astimezone()  # the archive's local time, as the modality meant
    return local.isoformat()


def instant(seconds: int | None) -> str | None:
    """Unix seconds as a FHIR instant (UTC)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ patient
def human_name(match: Json) -> Json | None:
    """The Alphabetic group of PatientName as a HumanName (PS3.5 §6.2.1: family^given^middle^
    prefix^suffix)."""
    name = first(match, "00100010")
    alphabetic = name.get("Alphabetic", "") if isinstance(name, dict) else ""
    parts = [p.strip() for p in alphabetic.split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    if not any((family, given, middle, prefix, suffix)):
        return None
    result: Json = {"use": "official"}
    words = [w for w in (prefix, family, given, middle, suffix) if w]  # as reports show it
    result["text"] = " ".join(words)
    if family:
        result["family"] = family
    if given or middle:
        result["given"] = [g for g in (given, middle) if g]
    if prefix:
        result["prefix"] = [prefix]
    if suffix:
        result["suffix"] = [suffix]
    return result


def patient_reference(match: Json) -> Json:
    """A Reference to the Patient a study's match names (with its name as display)."""
    patient_id = text(match, "00100020") or ""
    reference: Json = {
        "reference": f"Patient/{patient_resource_id(patient_id, text(match, '00100021'))}"
    }
    name = human_name(match)
    if name:
        reference["display"] = name["text"]
    return reference


def patient(match: Json) -> Json:
    """A Patient from a patient-level (or study-level) match."""
    patient_id = text(match, "00100020") or ""
    issuer = text(match, "00100021")
    identifier: Json = {
        "use": "usual",
        "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}]},
        "value": patient_id,
    }
    if issuer:
        identifier["assigner"] = {"display": issuer}
    resource: Json = {
        "resourceType": "Patient",
        "id": patient_resource_id(patient_id, issuer),
        "identifier": [identifier],
    }
    name = human_name(match)
    if name:
        resource["name"] = [name]
    sex = text(match, "00100040")
    if sex:
        resource["gender"] = _GENDER.get(sex.upper(), "unknown")
    birth = fhir_date(text(match, "00100030"))
    if birth:
        resource["birthDate"] = birth
    return resource


# ------------------------------------------------------------------ imaging study
def endpoint(dicomweb_url: str) -> Json:
    """The Endpoint of our DICOMweb root (WADO-RS; QIDO-RS and STOW-RS live there too)."""
    return {
        "resourceType": "Endpoint",
        "id": ENDPOINT_ID,
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
            "display": "DICOM WADO-RS",
        },
        "name": "Klinika DICOMweb",
        "payloadType": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                        "code": "any",
                    }
                ],
                "text": "DICOM",
            }
        ],
        "payloadMimeType": ["application/dicom", "application/dicom+json"],
        "address": dicomweb_url,
    }


def _modality(code: str) -> Json:
    return {"system": DICOM_MODALITY_SYSTEM, "code": code}


def study_started(match: Json) -> str | None:
    return fhir_date_time(text(match, "00080020"), text(match, "00080030"), text(match, "00080201"))


@dataclass(frozen=True)
class StudyContent:
    """A study-level match with the series and instance matches under it."""

    study: Json
    series: list[Json]
    instances: list[Json]


def imaging_study(content: StudyContent) -> Json:
    """An ImagingStudy with its series and instances, pointing at our DICOMweb Endpoint."""
    study = content.study
    study_uid = text(study, "0020000D") or ""
    identifiers: list[Json] = [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study_uid}"}]
    accession = text(study, "00080050")
    if accession:
        identifiers.append(
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "value": accession,
            }
        )
    resource: Json = {
        "resourceType": "ImagingStudy",
        "id": study_uid,
        "identifier": identifiers,
        "status": "available",
        "subject": patient_reference(study),
        "endpoint": [{"reference": f"Endpoint/{ENDPOINT_ID}"}],
        "numberOfSeries": len(content.series),
        "numberOfInstances": len(content.instances),
    }
    modalities = [str(m) for m in values(study, "00080061") if m]
    if modalities:
        resource["modality"] = [_modality(m) for m in modalities]
    started = study_started(study)
    if started:
        resource["started"] = started
    referrer = first(study, "00080090")
    if isinstance(referrer, dict) and referrer.get("Alphabetic"):
        resource["referrer"] = {"display": referrer["Alphabetic"].replace("^", " ").strip()}
    description = text(study, "00081030")
    if description:
        resource["description"] = description
    by_series: dict[str, list[Json]] = {}
    for instance in content.instances:
        by_series.setdefault(text(instance, "0020000E") or "", []).append(instance)
    if content.series:  # FHIR JSON has no empty arrays
        resource["series"] = [
            _series(s, by_series.get(text(s, "0020000E") or "", [])) for s in content.series
        ]
    return resource


def _series(match: Json, instances: list[Json]) -> Json:
    series: Json = {
        "uid": text(match, "0020000E") or "",
        "modality": _modality(text(match, "00080060") or "OT"),
        "numberOfInstances": len(instances),
    }
    number = first(match, "00200011")
    if isinstance(number, int):
        series["number"] = number
    description = text(match, "0008103E")
    if description:
        series["description"] = description
    body_part = text(match, "00180015")
    if body_part:
        series["bodySite"] = {"display": body_part}
    started = fhir_date_time(text(match, "00080021"), text(match, "00080031"), None)
    if started:
        series["started"] = started
    if instances:
        series["instance"] = [_instance(i) for i in instances]
    return series


def _instance(match: Json) -> Json:
    instance: Json = {
        "uid": text(match, "00080018") or "",
        "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{text(match, '00080016')}"},
    }
    number = first(match, "00200013")
    if isinstance(number, int):
        instance["number"] = number
    return instance


# ------------------------------------------------------------------ diagnostic report
@dataclass(frozen=True)
class SignedReport:
    """What a DiagnosticReport shows of a signed report version."""

    study: Json  # the study-level match of the report's study
    number: int
    state: str  # final | amended
    language: str
    conclusion: str
    signed_at: int | None
    signed_by_name: str | None
    pdf_url: str


def diagnostic_report(report: SignedReport) -> Json:
    """A DiagnosticReport (LOINC 18748-4) for the newest signed version of a study's report."""
    study_uid = text(report.study, "0020000D") or ""
    resource: Json = {
        "resourceType": "DiagnosticReport",
        "id": study_uid,
        "meta": {"versionId": str(report.number)},
        "status": report.state,
        "category": [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]
        },
        "subject": patient_reference(report.study),
        "imagingStudy": [{"reference": f"ImagingStudy/{study_uid}"}],
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "language": report.language,
                "url": report.pdf_url,
                "title": f"Report, version {report.number}",
            }
        ],
    }
    accession = text(report.study, "00080050")
    if accession:
        resource["identifier"] = [
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession}
        ]
    issued = instant(report.signed_at)
    if issued:
        resource["meta"]["lastUpdated"] = issued
        resource["issued"] = issued
        resource["presentedForm"][0]["creation"] = issued
    started = study_started(report.study)
    if started:
        resource["effectiveDateTime"] = started
    if report.signed_by_name:
        resource["resultsInterpreter"] = [{"display": report.signed_by_name}]
    if report.conclusion:
        resource["conclusion"] = report.conclusion
    return resource


# ------------------------------------------------------------------ service request
#: Scheduled procedure step status -> ServiceRequest.status (R4 valueset-request-status).
REQUEST_STATUS: dict[StepStatus, str] = {
    StepStatus.SCHEDULED: "active",
    StepStatus.ARRIVED: "active",
    StepStatus.IN_PROGRESS: "active",
    StepStatus.COMPLETED: "completed",
    StepStatus.DISCONTINUED: "revoked",
}
#: DICOM coding scheme designators (PS3.16 Table 8-1) with a FHIR system URI.
_CODE_SYSTEMS = {
    "SCT": "http://snomed.info/sct",
    "LN": "http://loinc.org",
    "DCM": DICOM_MODALITY_SYSTEM,
}
_IMAGING = {"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}


def _pn_text(value: str) -> str:
    parts = (value.split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    return " ".join(p for p in (prefix, family, given, middle, suffix) if p)


def service_request(step: ScheduledStep) -> Json:
    """A ServiceRequest for a scheduled procedure step (``klinika.workflow.ScheduledStep``):
    the order the modality worklist serves.

    References
    ----------
    FHIR R4 servicerequest.html; PS3.4 K.6.1.2 (worklist attributes).
    """
    details = step.details
    subject: Json = {"reference": f"Patient/{patient_resource_id(details.patient_id)}"}
    if details.patient_name:
        subject["display"] = _pn_text(details.patient_name)
    identifiers: list[Json] = [
        {
            "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
            "value": details.accession_number,
        },
        {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{step.study_instance_uid}"},
    ]
    resource: Json = {
        "resourceType": "ServiceRequest",
        "id": text_resource_id(details.step_id),
        "identifier": identifiers,
        "status": REQUEST_STATUS[step.status],
        "intent": "order",
        "category": [{"coding": [_IMAGING]}],
        "subject": subject,
        "authoredOn": instant(step.created_at),
        "orderDetail": [{"coding": [_modality(details.modality)]}],
    }
    code: Json = {}
    if details.procedure_code_value:
        coding: Json = {"code": details.procedure_code_value}
        system = _CODE_SYSTEMS.get(details.procedure_code_scheme.upper())
        if system:
            coding["system"] = system
        if details.procedure_code_meaning:
            coding["display"] = details.procedure_code_meaning
        code["coding"] = [coding]
    if details.requested_procedure_description:
        code["text"] = details.requested_procedure_description
    if code:
        resource["code"] = code
    started = fhir_date_time(details.start_date, details.start_time, None)
    if started:
        resource["occurrenceDateTime"] = started
    if details.referring_physician:
        resource["requester"] = {"display": _pn_text(details.referring_physician)}
    if details.performing_physician:
        resource["performer"] = [{"display": _pn_text(details.performing_physician)}]
    if details.station_ae_title:
        resource["locationCode"] = [{"text": details.station_ae_title}]
    if details.step_description:
        resource["note"] = [{"text": details.step_description}]
    return resource


# ------------------------------------------------------------------ bundle
def searchset(resources: list[Json], total: int, base: str, links: dict[str, str]) -> Json:
    """A searchset Bundle of ``resources`` (``base`` is the FHIR root URL)."""
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()],
    }
    if resources:  # FHIR JSON has no empty arrays
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    return bundle
