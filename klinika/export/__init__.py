"""Export of studies and series: a ZIP of the stored DICOM files with a DICOMDIR, or a ZIP of
JPEG/PNG images rendered with the stored window. Archives are streamed as they are built,
never held whole in memory. Imports archive and dicom; knows no HTTP."""

from klinika.export.zips import dicom_zip, images_zip

__all__ = ["dicom_zip", "images_zip"]
