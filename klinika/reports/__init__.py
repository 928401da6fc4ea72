"""Radiology reports: one per study, with versions (draft → final → amended), templates per
modality in five languages, the PDF, and the signed PDF stored into its study.

Owns :class:`ReportService` and the ``reports`` / ``report_versions`` tables. May import:
archive, index, auth, audit, i18n, dicom, db, errors — no web framework (the HTTP routes are
``klinika/web/reports.py``). The signed PDF enters the study through :meth:`Archive.store`,
the one ingest path, so it travels with the study over DIMSE and DICOMweb.
"""

from klinika.reports import schema as _schema  # noqa: F401  (registers the report tables)
from klinika.reports.document import Clinic
from klinika.reports.errors import InvalidReport, PdfUnavailable, ReportStateError, StaleReport
from klinika.reports.records import Draft, KeyImage, ReportVersion, ReportView
from klinika.reports.service import ReportService

__all__ = [
    "Clinic",
    "Draft",
    "InvalidReport",
    "KeyImage",
    "PdfUnavailable",
    "ReportService",
    "ReportStateError",
    "ReportVersion",
    "ReportView",
    "StaleReport",
]
