"""HL7 v2 messages in, commands out: the fields Klinika reads from ADT and order messages.

Parsing is python-hl7's; this module decodes the bytes in the message's character set,
checks the header, and turns the segments into one of the commands below. A message it
cannot use raises :class:`MessageError` carrying the HL7 error code (table 0357), the field
in error, and whether the answer is AE (content) or AR (refused as a whole).

References
----------
HL7 v2.5.1 chapter 2 (control: MSH, MSA, ERR; §2.9.2 original acknowledgment mode),
chapter 3 (ADT A08, A40; PID, MRG), chapter 4 (ORM^O01, OMI^O23; ORC, OBR, TQ1, IPC);
IHE RAD TF-2 RAD-1/RAD-4/RAD-12 (the fields of patient and order messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import hl7
from hl7.exceptions import HL7Exception

from klinika.errors import KlinikaError

AckCode = Literal["AA", "AE", "AR"]
#: HL7 table 0357 (message error condition codes) used here.
ERROR_TEXT = {
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}
#: MSH-18 character sets (HL7 table 0211) -> Python codecs; none named: UTF-8.
_CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/15": "iso8859-15",
}
_DATE = re.compile(r"\d{8}")
_SEX = {"M": "M", "F": "F", "O": "O", "A": "O", "N": "O", "U": None}
#: HL7's explicit null: the sender says "remove the value" (v2.5.1 §2.5.3).
NULL = '""'


class MessageError(KlinikaError):
    """A message that is not applied: ``code`` (table 0357), ``location`` (SEG^seq^field),
    ``ack`` AE (its content) or AR (refused as a whole: header, sender, type)."""

    def __init__(self, message: str, *, code: int, location: str = "", ack: AckCode = "AE") -> None:
        super().__init__(message)
        self.code = code
        self.location = location
        self.ack: AckCode = ack


@dataclass(frozen=True)
class Header:
    """What MSH says about a message."""

    field_separator: str = "|"
    encoding_characters: str = "^~\\&"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = "2.5"
    charset: str = ""


@dataclass(frozen=True)
class PatientUpdate:
    """ADT^A08: the patient's new demographics (keyword -> value, None to empty it)."""

    patient_id: str
    changes: dict[str, str | None]


@dataclass(frozen=True)
class PatientMerge:
    """ADT^A40: the prior patient (MRG-1) becomes the surviving one (PID-3)."""

    prior_patient_id: str
    patient_id: str
    changes: dict[str, str | None]


@dataclass(frozen=True)
class NewOrder:
    """ORC-1 NW: schedule one procedure step (the fields of ``StepDetails``)."""

    fields: dict[str, str]


@dataclass(frozen=True)
class CancelOrder:
    """ORC-1 CA: cancel the step named by its step id, else by its accession number."""

    step_id: str
    accession_number: str
    patient_id: str = ""


Command = PatientUpdate | PatientMerge | NewOrder | CancelOrder


@dataclass
class Parsed:
    """A parsed message, its header and the command it carries."""

    message: hl7.Message
    header: Header
    command: Command | None = None
    notes: list[str] = field(default_factory=list)


def codec_of(charset: str) -> str:
    """The Python codec of an MSH-18 value (UTF-8 for none or an unknown one)."""
    return _CHARSETS.get(charset.strip().upper(), "utf-8")


def decode(raw: bytes) -> str:
    """The text of a message in the character set MSH-18 names (UTF-8 when it names none).

    Raises
    ------
    MessageError
        (AR) for an unknown character set or bytes that are not text in it.
    """
    first = raw.split(b"\r", 1)[0].decode("latin-1")
    charset = ""
    if first.startswith("MSH") and len(first) > 3:
        parts = first.split(first[3])
        charset = parts[17].split(first[4:5] or "^")[0].strip() if len(parts) > 17 else ""
    codec = _CHARSETS.get(charset.upper())
    if codec is None:
        raise MessageError(
            f"character set {charset[:30]!r} (MSH-18) is not supported",
            code=103,
            location="MSH^1^18",
            ack="AR",
        )
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise MessageError(
            f"the message is not valid {codec} text (MSH-18 {charset or 'empty'})",
            code=102,
            location="MSH^1^18",
            ack="AR",
        ) from exc


def parse(raw: bytes) -> Parsed:
    """Parse one message and check its header.

    Raises
    ------
    MessageError
        (AR) when there is no usable MSH: the answer then has a default header.
    """
    text = decode(raw).replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH") or len(text) < 8:
        raise MessageError("the message does not start with an MSH segment", code=100, ack="AR")
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
        header = Header(
            field_separator=str(msh(1)),
            encoding_characters=str(msh(2)),
            sending_application=_text(message, "MSH.F3.R1.C1"),
            sending_facility=_text(message, "MSH.F4.R1.C1"),
            receiving_application=_text(message, "MSH.F5.R1.C1"),
            receiving_facility=_text(message, "MSH.F6.R1.C1"),
            message_type=_text(message, "MSH.F9.R1.C1"),
            trigger_event=_text(message, "MSH.F9.R1.C2"),
            control_id=_text(message, "MSH.F10"),
            processing_id=_text(message, "MSH.F11.R1.C1"),
            version=_text(message, "MSH.F12.R1.C1"),
            charset=_text(message, "MSH.F18.R1.C1"),
        )
    except (HL7Exception, KeyError, IndexError, ValueError) as exc:
        raise MessageError(f"the message cannot be parsed: {exc}", code=100, ack="AR") from exc
    return Parsed(message, header)


def check_header(header: Header) -> None:
    """Refuse (AR) what this receiver does not process: no control id, a processing id other
    than P (production) or D (debugging), a version other than 2.x.

    Raises
    ------
    MessageError
    """
    if not header.control_id:
        raise MessageError(
            "MSH-10 (message control id) is empty", code=101, location="MSH^1^10", ack="AR"
        )
    if header.processing_id not in ("P", "D"):
        raise MessageError(
            f"processing id {header.processing_id!r} (MSH-11) is not applied here: P or D",
            code=202,
            location="MSH^1^11",
            ack="AR",
        )
    if not re.fullmatch(r"2\.[1-9](\.\d+)?", header.version):
        raise MessageError(
            f"version {header.version!r} (MSH-12) is not HL7 v2.x",
            code=203,
            location="MSH^1^12",
            ack="AR",
        )


def command_of(parsed: Parsed) -> Command:
    """The command of an ADT^A08, ADT^A40, ORM^O01 or OMI^O23.

    Raises
    ------
    MessageError
        AR for other message types and events, AE for missing or malformed fields.
    """
    header, message = parsed.header, parsed.message
    kind = (header.message_type, header.trigger_event)
    if kind == ("ADT", "A08"):
        patient_id = _required(message, "PID.F3.R1.C1", "PID^1^3", "the patient ID (PID-3)")
        return PatientUpdate(patient_id, demographics(message))
    if kind == ("ADT", "A40"):
        patient_id = _required(message, "PID.F3.R1.C1", "PID^1^3", "the surviving ID (PID-3)")
        prior = _required(message, "MRG.F1.R1.C1", "MRG^1^1", "the prior patient ID (MRG-1)")
        if prior == patient_id:
            raise MessageError(
                "MRG-1 names the same patient as PID-3", code=102, location="MRG^1^1"
            )
        return PatientMerge(prior, patient_id, demographics(message))
    if kind in (("ORM", "O01"), ("OMI", "O23")):
        return _order(message, omi=kind[0] == "OMI")
    if header.message_type in ("ADT", "ORM", "OMI"):
        raise MessageError(
            f"event {header.message_type}^{header.trigger_event} is not processed "
            "(ADT^A08, ADT^A40, ORM^O01, OMI^O23 are)",
            code=201,
            location="MSH^1^9",
            ack="AR",
        )
    raise MessageError(
        f"message type {header.message_type or '(none)'} is not processed "
        "(ADT^A08, ADT^A40, ORM^O01, OMI^O23 are)",
        code=200,
        location="MSH^1^9",
        ack="AR",
    )


# ------------------------------------------------------------------ fields
def _text(message: hl7.Message, key: str) -> str:
    """The value at ``key`` (python-hl7's SEG.Fn.Rn.Cn accessor), unescaped; "" if absent."""
    try:
        value = message[key]
    except (KeyError, IndexError):
        return ""
    text = str(value or "")
    if text == NULL:
        return NULL
    return str(message.unescape(text)).strip() if "\\" in text else text.strip()


def _required(message: hl7.Message, key: str, location: str, what: str) -> str:
    value = _text(message, key)
    if not value or value == NULL:
        raise MessageError(f"{what} is missing", code=101, location=location)
    return value


def person_name(message: hl7.Message, field_key: str) -> str | None:
    """An XPN/XCN name as DICOM PN (family^given^middle^prefix^suffix); None for HL7's
    explicit null, "" when absent. ``field_key`` is ``SEG.Fn`` of an XPN (family first)."""
    parts = [_text(message, f"{field_key}.R1.C{n}") for n in range(1, 6)]
    if parts[0] == NULL:
        return None
    family = parts[0].split("&")[0]
    given, middle, suffix, prefix = parts[1:5]
    return "^".join((family, given, middle, prefix, suffix)).rstrip("^")


def _xcn_name(message: hl7.Message, field_key: str) -> str:
    """An XCN (id^family^given^middle^suffix^prefix) as DICOM PN."""
    parts = [_text(message, f"{field_key}.R1.C{n}") for n in range(2, 7)]
    family, given, middle, suffix, prefix = (p if p != NULL else "" for p in parts)
    return "^".join((family.split("&")[0], given, middle, prefix, suffix)).rstrip("^")


def demographics(message: hl7.Message) -> dict[str, str | None]:
    """PID-5 name, PID-7 birth date and PID-8 sex as patient attribute changes; fields the
    message leaves empty stay as they are, ``""`` (HL7 null) empties them."""
    changes: dict[str, str | None] = {}
    name = person_name(message, "PID.F5")
    if name is None or name:
        changes["PatientName"] = name
    birth = _text(message, "PID.F7.R1.C1")
    if birth == NULL:
        changes["PatientBirthDate"] = None
    elif birth:
        if not _DATE.match(birth):
            raise MessageError(f"PID-7 {birth[:20]!r} is not a date", code=102, location="PID^1^7")
        changes["PatientBirthDate"] = birth[:8]
    sex = _text(message, "PID.F8.R1.C1").upper()
    if sex == NULL:
        changes["PatientSex"] = None
    elif sex:
        if sex not in _SEX:
            raise MessageError(
                f"PID-8 {sex[:5]!r} is not a sex of table 0001", code=103, location="PID^1^8"
            )
        changes["PatientSex"] = _SEX[sex]
    return changes


def _order(message: hl7.Message, *, omi: bool) -> Command:
    """The step an ORM^O01 (ORC, OBR; IHE RAD-4 v2.3.1) or OMI^O23 (ORC, TQ1, OBR, IPC;
    IHE RAD-4 v2.5.1) orders or cancels."""
    for segment in ("ORC", "OBR"):
        try:
            count = len(message.segments(segment))
        except KeyError:
            count = 0
        if count != 1:
            raise MessageError(
                f"one {segment} segment per message, not {count}", code=100, location=segment
            )
    control = _text(message, "ORC.F1")
    patient_id = _required(message, "PID.F3.R1.C1", "PID^1^3", "the patient ID (PID-3)")
    if omi:
        accession = _text(message, "IPC.F1.R1.C1")
        procedure_id = _text(message, "IPC.F2.R1.C1")
        step_id = _text(message, "IPC.F4.R1.C1")
        modality = _text(message, "IPC.F5.R1.C1")
        station = _text(message, "IPC.F9.R1.C1")
    else:
        accession = _text(message, "OBR.F18")
        procedure_id = _text(message, "OBR.F19")
        step_id = _text(message, "OBR.F20")
        modality = _text(message, "OBR.F24")
        station = ""
    if control == "CA":
        if not step_id and not accession:
            where = "IPC^1^4" if omi else "OBR^1^20"
            raise MessageError(
                "a cancel names no step id nor accession number", code=101, location=where
            )
        return CancelOrder(step_id, accession, patient_id)
    if control != "NW":
        raise MessageError(
            f"order control {control[:4]!r} (ORC-1) is not processed: NW or CA",
            code=103,
            location="ORC^1^1",
        )
    start = (
        (_text(message, "TQ1.F7.R1.C1") if omi else "")
        or _text(message, "ORC.F7.R1.C4")
        or _text(message, "OBR.F27.R1.C4")
        or _text(message, "OBR.F36.R1.C1")
    )
    if not re.fullmatch(r"\d{8}(\d{2,6})?([.+-].*)?", start or ""):
        where = "TQ1^1^7" if omi else "ORC^1^7"
        raise MessageError(
            f"the scheduled start {start[:20]!r} is missing or not a date/time",
            code=101 if not start else 102,
            location=where,
        )
    digits = re.match(r"\d+", start)
    moment = digits.group(0) if digits else ""
    referring = _xcn_name(message, "PV1.F8") or _xcn_name(message, "ORC.F12")
    if not referring:
        referring = _xcn_name(message, "OBR.F16")
    fields = {
        "patient_id": patient_id,
        "patient_name": person_name(message, "PID.F5") or "",
        "patient_birth_date": _text(message, "PID.F7.R1.C1")[:8].strip('"'),
        "patient_sex": (_SEX.get(_text(message, "PID.F8.R1.C1").upper()) or ""),
        "modality": modality,
        "start_date": moment[:8],
        "start_time": (moment[8:14] or "0000").ljust(4, "0"),
        "accession_number": accession,
        "requested_procedure_id": procedure_id,
        "requested_procedure_description": _text(message, "OBR.F4.R1.C2"),
        "procedure_code_value": _text(message, "OBR.F4.R1.C1"),
        "procedure_code_scheme": _text(message, "OBR.F4.R1.C3"),
        "procedure_code_meaning": _text(message, "OBR.F4.R1.C2"),
        "station_ae_title": station,
        "referring_physician": referring,
        "step_description": _text(message, "OBR.F4.R1.C2"),
        "step_id": step_id,
    }
    if not fields["modality"]:
        raise MessageError(
            "the modality is missing", code=101, location="IPC^1^5" if omi else "OBR^1^24"
        )
    return NewOrder({k: v for k, v in fields.items() if v != NULL})
