"""Radiology reports: one per study, with versions (draft → final → amended), templates per
modality and language, PDF export, and the signed PDF stored back into the study as DICOM
Encapsulated PDF. Imports archive, index, auth, audit and i18n; knows no HTTP."""
