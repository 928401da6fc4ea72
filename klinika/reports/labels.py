"""The words of a report, as English msgids (translated in the ``reports`` i18n domain).

Section keys are stable identifiers (API, database, PDF); their labels are translated where
they are shown, in the report's own language.
"""

from __future__ import annotations

from klinika.i18n import N_
from klinika.reports.states import ReportState

#: The sections of a report, in reading order.
SECTIONS: tuple[str, ...] = (
    "indication",
    "technique",
    "comparison",
    "findings",
    "impression",
    "recommendations",
)

SECTION_LABELS = {
    "indication": N_("Indication"),
    "technique": N_("Technique"),
    "comparison": N_("Comparison"),
    "findings": N_("Findings"),
    "impression": N_("Impression"),
    "recommendations": N_("Recommendations"),
}

#: The patient and study header, in order: key -> label.
HEADER_LABELS = {
    "patient_name": N_("Patient"),
    "patient_id": N_("Patient ID"),
    "birth_date": N_("Birth date"),
    "sex": N_("Sex"),
    "study_date": N_("Study date"),
    "study_time": N_("Study time"),
    "modality": N_("Modality"),
    "study_description": N_("Study description"),
    "accession_number": N_("Accession number"),
    "referring_physician": N_("Referring physician"),
}

#: Patient Sex (0010,0040) values, PS3.3 C.7.1.1.
SEX_LABELS = {"F": N_("Female"), "M": N_("Male"), "O": N_("Other")}

#: Report states: never signed, signed once, signed again after an amendment.
STATUS_LABELS: dict[ReportState, str] = {
    ReportState.DRAFT: N_("Draft"),
    ReportState.FINAL: N_("Final"),
    ReportState.AMENDED: N_("Amended"),
}

TITLE = N_("Radiology report")
KEY_IMAGES = N_("Key images")
SIGNED_BY = N_("Signed by")
SIGNED_AT = N_("Signed on")
NOT_SIGNED = N_("Not signed")
DRAFT_MARK = N_("DRAFT — not signed")
AMENDED_MARK = N_("Amended — version %(version)s")
AMENDMENT_REASON = N_("Reason for amendment")
VERSION = N_("Version %(version)s")
PAGE = N_("Page")
