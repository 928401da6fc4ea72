"""FHIR resource ids of what Klinika holds.

A FHIR id is 1-64 characters of ``[A-Za-z0-9\\-.]`` (R4 datatypes.html#id). Study Instance
UIDs always fit, so ``ImagingStudy`` and ``DiagnosticReport`` ids are the Study Instance UID.
A Patient ID (LO: any text up to 64 characters, Cyrillic and spaces included) often does not,
and two issuers may use the same one: such patients get ``x.`` followed by the hex of the
UTF-8 of ``PatientID`` (and ``\\IssuerOfPatientID``). The mapping is one-to-one: a plain
Patient ID that itself starts with ``x.`` is encoded too.
"""

from __future__ import annotations

import re

from klinika.errors import NotFound

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ENCODED = "x."
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def patient_resource_id(patient_id: str, issuer: str | None = None) -> str:
    """The Patient resource id of ``patient_id`` (of ``issuer``)."""
    if not issuer and _FHIR_ID.fullmatch(patient_id) and not patient_id.startswith(_ENCODED):
        return patient_id
    raw = patient_id + ("\\" + issuer if issuer else "")
    return _ENCODED + raw.encode("utf-8").hex()


def text_resource_id(value: str) -> str:
    """The resource id of a text key (a scheduled step's id), encoded as Patient IDs are."""
    return patient_resource_id(value)


def text_key(resource_id: str, resource_type: str) -> str:
    """The text key a :func:`text_resource_id` names.

    Raises
    ------
    NotFound
        When ``resource_id`` cannot name anything.
    """
    try:
        value, extra = patient_key(resource_id)
    except NotFound as exc:
        raise NotFound(f"{resource_type}/{resource_id[:80]} is not known") from exc
    if extra is not None:
        raise NotFound(f"{resource_type}/{resource_id[:80]} is not known")
    return value


def patient_key(resource_id: str) -> tuple[str, str | None]:
    """The (Patient ID, issuer) a Patient resource id names.

    Raises
    ------
    NotFound
        When ``resource_id`` cannot be the id of any patient we hold.
    """
    if resource_id.startswith(_ENCODED):
        try:
            raw = bytes.fromhex(resource_id[len(_ENCODED) :]).decode("utf-8")
        except ValueError as exc:
            raise NotFound(f"Patient/{resource_id[:80]} is not known") from exc
        patient_id, _, issuer = raw.partition("\\")
        if patient_id and raw.isprintable():  # no control character is in a DICOM LO
            return patient_id, issuer or None
    elif _FHIR_ID.fullmatch(resource_id):
        return resource_id, None
    raise NotFound(f"Patient/{resource_id[:80]} is not known")


def study_uid_of(resource_id: str, resource_type: str) -> str:
    """The Study Instance UID an ImagingStudy or DiagnosticReport id names.

    Raises
    ------
    NotFound
        When ``resource_id`` is not a UID (PS3.5 §9.1), so names nothing we hold.
    """
    if len(resource_id) <= 64 and _UID.fullmatch(resource_id):
        return resource_id
    raise NotFound(f"{resource_type}/{resource_id[:80]} is not known")
