"""De-identification: PS3.15 Annex E, the Basic Application Level Confidentiality Profile.

One engine for every door that hands out de-identified data (WADO-URI ``anonymize=yes``, the
console's de-identified export, ``klinika export --deidentify``). The actions come from the
standard's Table E.1-1 (:mod:`klinika.dicom.confidentiality_table`, generated, not typed by
hand). Three options may be added to the Basic Profile, and are by default:

- Retain Longitudinal Temporal Information with Modified Dates: dates are shifted by one
  offset per :class:`Deidentifier` (so intervals between a patient's studies survive), times
  are kept;
- Clean Descriptors: descriptions are kept with the patient's name, ID, birth date and
  accession number removed from their text;
- Retain Patient Characteristics: sex, age, size, weight and the like are kept.

A :class:`Deidentifier` is one export: the UIDs it makes (``2.25.`` + 128 bits of an HMAC of the
original under a secret of its own) and the patient pseudonyms are consistent within it, so
references between the exported instances stay intact, and unrelated to any other export.

References
----------
PS3.15 Annex E (E.1.1 the action codes, Table E.1-1, E.3 the options), PS3.3 C.12.1.1.7
(Patient Identity Removed, De-identification Method), PS3.16 CID 7050 (method codes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from klinika.dicom.confidentiality_table import ATTRIBUTES
from klinika.errors import Conflict


class Option(StrEnum):
    """The PS3.15 E.3 options this engine implements."""

    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"


DEFAULT_OPTIONS = frozenset(Option)

#: PS3.16 CID 7050 codes (scheme DCM) of the profile and of each option.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
}

_RULES: dict[int, tuple[str, dict[str, str]]] = {tag: (basic, by) for tag, basic, by in ATTRIBUTES}
#: PS3.15 E.1.1: where the table leaves a choice, the one that keeps an object valid whatever
#: the attribute's type in its IOD (a dummy value satisfies Type 1, empty satisfies Type 2).
_CHOICE = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
_DUMMY_TEXT = {
    "PN": "ANONYMOUS",
    "AE": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}
_TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "CS", "PN", "AE"}
_DATE_TAGS_WITH_SHIFT = {"DA", "DT"}


class NotDeidentifiable(Conflict):
    """An instance this engine cannot make safe: burned-in annotation in the pixels, or an
    encapsulated document whose content it cannot clean (PS3.15 E.1.1: those need the Clean
    Pixel Data option or a human)."""


@dataclass(frozen=True)
class _Identity:
    """The patient's identifying strings, removed from descriptors by Clean Descriptors."""

    tokens: tuple[str, ...]

    @classmethod
    def of(cls, dataset: Dataset) -> _Identity:
        words: set[str] = set()
        name = str(dataset.get("PatientName", "") or "")
        words.update(w for w in re.split(r"[\^=\s,]+", name) if len(w) >= 2)
        for keyword in ("PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs"):
            value = dataset.get(keyword)
            if value:
                values = value if isinstance(value, list | tuple) else [value]
                words.update(str(v) for v in values if len(str(v)) >= 2)
        return cls(tuple(sorted(words, key=len, reverse=True)))

    def clean(self, text: str) -> str:
        for token in self.tokens:
            text = re.sub(re.escape(token), "", text, flags=re.IGNORECASE)
        return " ".join(text.split())


class Deidentifier:
    """One de-identified export: consistent UIDs, pseudonyms and date offset across its
    instances.

    Parameters
    ----------
    options
        The PS3.15 E.3 options to apply on top of the Basic Profile.
    secret
        Keys the UID and pseudonym mapping; random by default (a fresh mapping per export).
    """

    def __init__(
        self, options: Iterable[Option] = DEFAULT_OPTIONS, *, secret: bytes | None = None
    ) -> None:
        self.options = frozenset(options)
        self._secret = secret if secret is not None else os.urandom(32)
        digest = hmac.new(self._secret, b"date-offset", hashlib.sha256).digest()
        #: Days every date moves back: one offset per export, 1 to 3,650 days.
        self.date_offset_days = int.from_bytes(digest[:4], "big") % 3650 + 1

    # ------------------------------------------------------------------ public
    def part10(self, data: bytes) -> bytes:
        """A de-identified copy of a Part-10 file, in its own transfer syntax.

        Raises
        ------
        NotDeidentifiable
            For burned-in annotation, an encapsulated document, or a transfer syntax pydicom
            cannot write.
        """
        try:
            dataset = dcmread(io.BytesIO(data))
            self.dataset(dataset)
            syntax = UID(dataset.file_meta.TransferSyntaxUID)
            out = io.BytesIO()
            # written as the File Meta says, even when the sender encoded it otherwise
            dataset.save_as(
                out,
                implicit_vr=syntax.is_implicit_VR,
                little_endian=syntax.is_little_endian,
                enforce_file_format=True,
            )
        except NotDeidentifiable:
            raise
        except Exception as exc:  # pydicom raises many types for what it cannot write back
            raise NotDeidentifiable(f"the instance cannot be rewritten: {exc}") from exc
        return out.getvalue()

    def dataset(self, dataset: Dataset) -> Dataset:
        """De-identify ``dataset`` in place (its File Meta too) and return it."""
        if "EncapsulatedDocument" in dataset:
            raise NotDeidentifiable("an encapsulated document cannot be cleaned automatically")
        if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES":
            raise NotDeidentifiable("the pixel data carries burned-in annotation")
        identity = _Identity.of(dataset)
        patient_id = str(dataset.get("PatientID", "") or "")
        study_uid = str(dataset.get("StudyInstanceUID", "") or "")
        self._walk(dataset, identity)
        pseudonym = self.pseudonym(patient_id)
        dataset.PatientName = pseudonym
        dataset.PatientID = pseudonym
        # Z allows a dummy: one per study keeps a DICOMDIR (Type 1 there) possible
        dataset.StudyID = self._digest("study", study_uid)[:8]
        self._mark(dataset)
        meta = getattr(dataset, "file_meta", None)
        if meta is not None and "SOPInstanceUID" in dataset:
            meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        return dataset

    def uid(self, original: str) -> str:
        """The replacement of a UID: the same original gives the same UID in this export."""
        digest = hmac.new(self._secret, b"uid:" + original.encode(), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def pseudonym(self, patient_id: str) -> str:
        """The patient's name and ID in this export (one per original Patient ID)."""
        return "ANON-" + self._digest("patient", patient_id)[:12]

    def _digest(self, kind: str, value: str) -> str:
        message = f"{kind}:{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest().upper()

    # ---------------------------------------------------------------- the walk
    def _walk(self, dataset: Dataset, identity: _Identity) -> None:
        for element in list(dataset):
            action = self._action(element.tag)
            if action == "X":
                del dataset[element.tag]
            elif action == "Z":
                element.value = [] if element.VR == "SQ" else None
            elif action == "D":
                self._dummy(dataset, element, identity)
            elif action == "U":
                self._replace_uids(dataset, element, identity)
            elif action == "C":
                self._clean(element, identity)
            elif element.VR == "SQ":  # K, or not in the table: keep, but look inside
                for item in element.value:
                    self._walk(item, identity)

    def _action(self, tag: int) -> str:
        group = tag >> 16
        if group % 2 == 1:  # private attributes (creators included)
            return "X"
        if 0x5000 <= group <= 0x50FF:  # curves
            return "X"
        if 0x6000 <= group <= 0x60FF:  # overlays: Table E.1-1 removes their data and
            return "X"  # comments, which leaves an invalid module; the whole overlay goes
        rule = _RULES.get(tag)
        if rule is None:
            return "K"
        basic, by_option = rule
        for option in self.options:
            if option.value in by_option:
                return by_option[option.value]
        return _CHOICE.get(basic, basic)

    def _dummy(self, dataset: Dataset, element: DataElement, identity: _Identity) -> None:
        if element.VR == "SQ":
            for item in element.value:
                self._walk(item, identity)
        elif element.VR == "UI":
            self._replace_uids(dataset, element, identity)
        elif element.VR in _DUMMY_TEXT:
            element.value = _DUMMY_TEXT[element.VR]
        elif element.VR in _TEXT_VRS:
            element.value = "ANONYMIZED"
        else:  # binary or numeric values have no safe dummy: remove
            del dataset[element.tag]

    def _replace_uids(self, dataset: Dataset, element: DataElement, identity: _Identity) -> None:
        if element.VR == "SQ":  # X/Z/U*: keep the references, with their UIDs replaced
            for item in element.value:
                self._walk(item, identity)
            return
        if element.VR != "UI":  # X/Z/U* on an attribute that is no UID: empty it
            element.value = None
            return
        if element.VM > 1:
            element.value = [self.uid(str(v)) for v in element.value]
        elif element.value:
            element.value = self.uid(str(element.value))

    def _clean(self, element: DataElement, identity: _Identity) -> None:
        if element.VR == "SQ":
            for item in element.value:
                self._walk(item, identity)
        elif element.VR in _DATE_TAGS_WITH_SHIFT and element.value:
            values = element.value if element.VM > 1 else [element.value]
            shifted = [self._shift(str(v), element.VR) for v in values]
            element.value = shifted if element.VM > 1 else shifted[0]
        elif element.VR in _TEXT_VRS - {"CS"} and element.value:
            values = element.value if element.VM > 1 else [element.value]
            cleaned = [identity.clean(str(v)) for v in values]
            element.value = cleaned if element.VM > 1 else cleaned[0]
        # times, codes and numbers carry nothing identifying once dates moved: kept

    def _shift(self, value: str, vr: str) -> str:
        """A DA or DT value moved back by this export's offset (DT keeps its time part)."""
        try:
            day = dt.date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return _DUMMY_TEXT[vr]
        moved = (day - dt.timedelta(days=self.date_offset_days)).strftime("%Y%m%d")
        return moved if vr == "DA" else moved + value[8:]

    def _mark(self, dataset: Dataset) -> None:
        """PS3.3 C.12.1.1.7: say that and how identity was removed."""
        dataset.PatientIdentityRemoved = "YES"
        chosen = [OPTION_CODES[o] for o in Option if o in self.options]
        dataset.DeidentificationMethod = ["PS3.15 E.1 Basic Profile"] + [
            meaning[:64] for _, meaning in chosen
        ]
        codes = Sequence()
        for value, meaning in [BASIC_PROFILE_CODE, *chosen]:
            code = Dataset()
            code.CodeValue = value
            code.CodingSchemeDesignator = "DCM"
            code.CodeMeaning = meaning
            codes.append(code)
        dataset.DeidentificationMethodCodeSequence = codes
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options:
            dataset.LongitudinalTemporalInformationModified = "MODIFIED"
