"""Audit events as DICOM audit messages (IHE ATNA), the XML a hospital's audit repository reads.

References
----------
PS3.15 A.5.1 (the AuditMessage schema: EventIdentification, ActiveParticipant,
AuditSourceIdentification, ParticipantObjectIdentification), A.5.3 (DICOM audit messages),
PS3.16 CID 400-405 (Event ID, Event Type, Role ID and Participant Object ID Type codes).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from typing import Any, NamedTuple

from klinika.audit.outcomes import Outcome


class Code(NamedTuple):
    """A coded value as the schema writes it (``csd-code``, ``codeSystemName``,
    ``originalText``)."""

    value: str
    scheme: str
    meaning: str

    def element(self, parent: ET.Element, tag: str) -> ET.Element:
        return ET.SubElement(
            parent,
            tag,
            {"csd-code": self.value, "codeSystemName": self.scheme, "originalText": self.meaning},
        )


# PS3.16 CID 400 Audit Event ID
APPLICATION_ACTIVITY = Code("110100", "DCM", "Application Activity")
AUDIT_LOG_USED = Code("110101", "DCM", "Audit Log Used")
INSTANCES_ACCESSED = Code("110103", "DCM", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = Code("110104", "DCM", "DICOM Instances Transferred")
STUDY_DELETED = Code("110105", "DCM", "DICOM Study Deleted")
EXPORT = Code("110106", "DCM", "Export")
PATIENT_RECORD = Code("110110", "DCM", "Patient Record")
QUERY = Code("110112", "DCM", "Query")
SECURITY_ALERT = Code("110113", "DCM", "Security Alert")
USER_AUTHENTICATION = Code("110114", "DCM", "User Authentication")
# PS3.16 CID 401 Audit Event Type
LOGIN = Code("110122", "DCM", "Login")
LOGOUT = Code("110123", "DCM", "Logout")
# PS3.16 CID 402 Audit Active Participant Role ID
APPLICATION = Code("110150", "DCM", "Application")
SOURCE = Code("110153", "DCM", "Source Role ID")
# RFC 3881 / PS3.16 CID 404 Participant Object ID Type
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
STUDY_INSTANCE_UID = Code("110180", "DCM", "Study Instance UID")
# RFC 3881 Audit Source Type: 4 = application server process
APPLICATION_SERVER = Code("4", "RFC-3881", "Application Server Process")

#: Klinika's action prefix or name → (Event ID, EventActionCode C/R/U/D/E).
EVENTS: dict[str, tuple[Code, str]] = {
    "auth:": (USER_AUTHENTICATION, "E"),
    "user:": (SECURITY_ALERT, "U"),
    "audit:read": (AUDIT_LOG_USED, "R"),
    "audit:": (APPLICATION_ACTIVITY, "E"),
    "dicom:read": (INSTANCES_ACCESSED, "R"),
    "dicom:store": (INSTANCES_TRANSFERRED, "C"),
    "dicom:annotate": (INSTANCES_TRANSFERRED, "C"),
    "dicom:move": (INSTANCES_TRANSFERRED, "R"),
    "dicom:get": (INSTANCES_TRANSFERRED, "R"),
    "dicom:find": (QUERY, "E"),
    "dicom:delete": (STUDY_DELETED, "D"),
    "dicom:export": (EXPORT, "R"),
    # Send to… (we read and transfer), Query/Retrieve (instances created here), remote query
    "dicom:send": (INSTANCES_TRANSFERRED, "R"),
    "dicom:retrieve": (INSTANCES_TRANSFERRED, "C"),
    "dicom:query": (QUERY, "E"),
    # DICOM nodes: who may talk to the archive (a network configuration change)
    "node:": (SECURITY_ALERT, "U"),
    "report:view": (PATIENT_RECORD, "R"),
    "report:pdf": (PATIENT_RECORD, "R"),
    "report:": (PATIENT_RECORD, "U"),
}
EVENT_TYPES = {"auth:login": LOGIN, "auth:logout": LOGOUT}
#: EventOutcomeIndicator: 0 success, 4 minor failure (refused, not found), 8 serious failure.
#: EventOutcomeIndicator (DICOM PS3.15 A.5.1) of each outcome: 0 success, 4 minor failure.
OUTCOMES: dict[Outcome, str] = {Outcome.SUCCESS: "0", Outcome.FAILURE: "4", Outcome.DENIED: "4"}


def event_code(action: str, study_uid: str | None) -> tuple[Code, str]:
    """The Event ID and action code of a Klinika action (a search without a study is a Query)."""
    if action == "dicom:read" and not study_uid:
        return QUERY, "E"
    if action in EVENTS:
        return EVENTS[action]
    for prefix, code in EVENTS.items():
        if prefix.endswith(":") and action.startswith(prefix):
            return code
    return APPLICATION_ACTIVITY, "E"


def audit_message(event: dict[str, Any], *, source_id: str) -> bytes:
    """One event (a row of the trail) as a PS3.15 A.5.1 ``AuditMessage`` (UTF-8 XML).

    ``source_id`` is the AuditSourceID (the installation's AE title). The event's sequence
    number and hash go into a ``ParticipantObjectDetail`` of the last participant object, so
    a message can be matched with the chain.
    """
    action, study_uid, patient_id = event["action"], event["study_uid"], event["patient_id"]
    event_id, action_code = event_code(action, study_uid)
    root = ET.Element("AuditMessage")
    identification = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": action_code,
            "EventDateTime": event["occurred_at"],
            "EventOutcomeIndicator": OUTCOMES[Outcome(event["outcome"])],
        },
    )
    event_id.element(identification, "EventID")
    if action in EVENT_TYPES:
        EVENT_TYPES[action].element(identification, "EventTypeCode")
    if event["outcome"] != Outcome.SUCCESS:
        ET.SubElement(
            identification, "EventOutcomeDescription"
        ).text = f"{action} {event['outcome']}"
    user = ET.SubElement(
        root,
        "ActiveParticipant",
        {"UserID": event["actor"], "UserIsRequestor": "true", "UserName": event["actor"]},
    )
    if event.get("source"):
        user.set("NetworkAccessPointID", str(event["source"]).rpartition("@")[2])
        user.set("NetworkAccessPointTypeCode", "2")
    (SOURCE if event["role"] == "modality" else APPLICATION).element(user, "RoleIDCode")
    ET.SubElement(
        root, "ActiveParticipant", {"UserID": source_id, "UserIsRequestor": "false"}
    ).append(_code_element(APPLICATION, "RoleIDCode"))
    ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source_id}).append(
        _code_element(APPLICATION_SERVER, "AuditSourceTypeCode")
    )
    objects: list[ET.Element] = []
    if patient_id:
        patient = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": patient_id,
                "ParticipantObjectTypeCode": "1",  # person
                "ParticipantObjectTypeCodeRole": "1",  # patient
            },
        )
        PATIENT_NUMBER.element(patient, "ParticipantObjectIDTypeCode")
        objects.append(patient)
    if study_uid:
        study = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": study_uid,
                "ParticipantObjectTypeCode": "2",  # system object
                "ParticipantObjectTypeCodeRole": "3",  # report (PS3.15 A.5.3: studies)
            },
        )
        STUDY_INSTANCE_UID.element(study, "ParticipantObjectIDTypeCode")
        objects.append(study)
    for element in objects[-1:]:  # the chain position, to match a message with the trail
        _detail(element, "klinika-seq", str(event["seq"]))
        _detail(element, "klinika-hash", str(event["hash"]))
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def _code_element(code: Code, tag: str) -> ET.Element:
    element = ET.Element(tag)
    element.attrib.update(
        {"csd-code": code.value, "codeSystemName": code.scheme, "originalText": code.meaning}
    )
    return element


def _detail(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(
        parent,
        "ParticipantObjectDetail",
        {"type": name, "value": base64.b64encode(value.encode("utf-8")).decode("ascii")},
    )
