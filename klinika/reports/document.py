"""What the PDF shows, as one JSON-able value for the typst layout (``layout.py``): labels in
the report's language, dates in its format, the header read from the index, the sections,
the marks of drafts and amendments, the signature."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klinika.i18n import translator
from klinika.reports import labels
from klinika.reports.header import StudyHeader
from klinika.reports.records import ReportVersion


@dataclass(frozen=True)
class Clinic:
    """The letterhead of the PDF (settings ``clinic_name``, ``clinic_address``,
    ``clinic_logo``)."""

    name: str
    address: str = ""
    logo: Path | None = None


def report_document(clinic: Clinic, header: StudyHeader, version: ReportVersion) -> dict[str, Any]:
    """What the PDF layout shows, in the report's language (see ``layout.py``)."""
    speak = translator(version.language)
    signed = version.signed
    accession = header.accession_number or header.study_uid
    return {
        "lang": version.language,
        "title": speak.gettext(labels.TITLE),
        "labels": {
            "key_images": speak.gettext(labels.KEY_IMAGES),
            "signed_by": speak.gettext(labels.SIGNED_BY),
            "signed_at": speak.gettext(labels.SIGNED_AT),
            "not_signed": speak.gettext(labels.NOT_SIGNED),
            "amendment_reason": speak.gettext(labels.AMENDMENT_REASON),
            "page": speak.gettext(labels.PAGE),
        },
        "clinic": {"name": clinic.name, "address": clinic.address},
        "header": [[label, value or "—"] for label, value in header.rows(speak)],
        "patient_line": " · ".join(p for p in (header.patient_name, header.patient_id) if p),
        "sections": [
            {"label": speak.gettext(labels.SECTION_LABELS[key]), "text": text}
            for key, text in version.sections.items()
        ],
        "amended_mark": speak.gettext(labels.AMENDED_MARK, version=version.number)
        if version.number > 1
        else None,
        "amendment_reason": version.amendment_reason if version.number > 1 else None,
        "draft_mark": None if signed else speak.gettext(labels.DRAFT_MARK),
        "signature": {
            "name": version.signed_by_name or version.signed_by or "",
            "when": speak.format_datetime(version.signed_at, "long"),
        }
        if signed
        else None,
        "footer": f"{speak.gettext(labels.VERSION, version=version.number)} · {accession}",
    }
