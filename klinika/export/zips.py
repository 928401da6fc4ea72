"""Streamed ZIP archives of a study or series (zipstream-ng writes ZIP64 when needed)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.fileset import FileSet
from zipstream import ZIP_STORED, ZipStream

from klinika.archive import Archive, InstanceRecord
from klinika.dicom import render
from klinika.dicom.deidentify import Deidentifier, NotDeidentifiable

log = logging.getLogger(__name__)
IMAGE_SUFFIX = {"image/jpeg": "jpg", "image/png": "png"}
CHUNK_BYTES = 1 << 20


def _records(archive: Archive, study_uid: str, series_uid: str | None) -> list[InstanceRecord]:
    """The instances to export, in series and instance order (raises NotFound when none)."""
    return archive.instances(study_uid, series_uid)


# Type 1 keys of the PATIENT, STUDY, SERIES and IMAGE directory records (PS3.3 F.5) that an
# instance may lack (Study ID and the numbers are Type 2 in the image IODs; dates are often
# empty in de-identified or old data): the record gets the first value found, else a neutral one.
DIRECTORY_FALLBACKS: dict[str, tuple[tuple[str, ...], str]] = {
    "PatientID": ((), "UNKNOWN"),
    "StudyID": (("AccessionNumber",), "1"),
    "StudyDate": (("SeriesDate", "AcquisitionDate", "ContentDate"), "19000101"),
    "StudyTime": (("SeriesTime", "AcquisitionTime", "ContentTime"), "000000"),
    "SeriesNumber": ((), "1"),
}


def _with_directory_keys(header: Dataset, number: int) -> Dataset:
    """``header`` with every Type 1 directory-record key filled (the copy read for the
    DICOMDIR only: the exported file keeps its bytes). A missing Instance Number becomes the
    instance's position in the export."""
    for keyword, (sources, neutral) in DIRECTORY_FALLBACKS.items():
        if not str(header.get(keyword, "") or "").strip():
            found = (str(header.get(k, "") or "").strip() for k in sources)
            setattr(header, keyword, next((v for v in found if v), neutral))
    if not str(header.get("InstanceNumber", "") or "").strip():
        header.InstanceNumber = number
    return header


def dicomdir(
    archive: Archive, records: list[InstanceRecord], deidentifier: Deidentifier | None = None
) -> tuple[bytes, dict[str, str], list[str]]:
    """A DICOMDIR for ``records`` (PS3.10 §8, PS3.3 F.5), each instance's path in the file-set
    (by the SOP Instance UID stored, not the de-identified one), and what was left out.

    pydicom's FileSet builds the directory records; it is given header-only copies of the
    instances (read up to the pixel data, not the whole file), de-identified when the export
    is, and the files are then placed at the paths it chose. An instance the de-identifier
    cannot make safe is left out, with a line saying why (its position and modality only).
    """
    file_set = FileSet()
    file_set.ID = "KLINIKA"
    left_out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="klinika-dicomdir-") as work:
        exported_as: dict[str, str] = {}
        for number, record in enumerate(records, 1):
            with archive.blobs.open(record.blob_key) as stored:
                header = dcmread(stored, stop_before_pixels=True)
            if deidentifier is not None:
                modality = header.get("Modality", "")
                try:
                    deidentifier.dataset(header)
                except NotDeidentifiable as exc:
                    left_out.append(f"instance {number} ({modality or 'no modality'}): {exc}")
                    continue
            exported_as[header.SOPInstanceUID] = record.sop_instance_uid
            file_set.add(_with_directory_keys(header, number))
        file_set.write(work)
        paths = {
            exported_as[str(i.SOPInstanceUID)]: Path(i.path).relative_to(work).as_posix()
            for i in file_set
        }
        return (Path(work) / "DICOMDIR").read_bytes(), paths, left_out


def dicom_zip(
    archive: Archive,
    study_uid: str,
    series_uid: str | None = None,
    deidentifier: Deidentifier | None = None,
) -> Iterator[bytes]:
    """The stored DICOM files (bytes as received) and a DICOMDIR, as a streamed ZIP.

    With a ``deidentifier`` every file and the DICOMDIR are de-identified (PS3.15 Annex E, one
    mapping for the whole ZIP); instances it cannot make safe (burned-in annotation, encapsulated
    documents) are left out and listed in ``NOT-INCLUDED.txt``.

    The instances and the DICOMDIR are found now (NotFound is raised here, before anything is
    sent); the files are read while the ZIP is consumed."""
    records = _records(archive, study_uid, series_uid)
    directory, paths, left_out = dicomdir(archive, records, deidentifier)
    stream = ZipStream(compress_type=ZIP_STORED)  # DICOM pixel data rarely compresses well
    stream.add(directory, "DICOMDIR")
    for record in records:
        path = paths.get(record.sop_instance_uid)
        if path is None:
            continue
        if deidentifier is None:
            stream.add(_blob(archive, record), path)
        else:
            stream.add(_deidentified(archive, record, deidentifier), path)
    if left_out:
        stream.add("\n".join(left_out).encode() + b"\n", "NOT-INCLUDED.txt")
    return iter(stream)


def _deidentified(
    archive: Archive, record: InstanceRecord, deidentifier: Deidentifier
) -> Iterator[bytes]:
    """One instance de-identified when the ZIP reaches it (one instance in memory at a time)."""
    yield deidentifier.part10(archive.read(record))


def _blob(archive: Archive, record: InstanceRecord) -> Iterator[bytes]:
    """The stored file in chunks, opened when the ZIP reaches this entry (a multi-frame
    instance of a gigabyte is never held whole)."""
    with archive.blobs.open(record.blob_key) as stored:
        while chunk := stored.read(CHUNK_BYTES):
            yield chunk


def images_zip(
    archive: Archive,
    study_uid: str,
    series_uid: str | None = None,
    media_type: str = "image/jpeg",
) -> Iterator[bytes]:
    """Every frame rendered as JPEG or PNG with the stored window, as a streamed ZIP
    (``series-01/image-0001[-frame-0001].jpg``, in series and instance order). Instances
    without pixel data (SR, PDF) are left out."""
    options = render.RenderOptions(media_type, quality=92)
    suffix = IMAGE_SUFFIX[media_type]
    stream = ZipStream(compress_type=ZIP_STORED)  # JPEG and PNG are compressed already
    series_names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for record in _records(archive, study_uid, series_uid):
        if not record.has_pixel_data:
            continue
        folder = series_names.setdefault(record.series_uid, f"series-{len(series_names) + 1:02d}")
        counts[folder] = counts.get(folder, 0) + 1
        for frame in range(record.number_of_frames):
            name = f"{folder}/image-{counts[folder]:04d}"
            if record.number_of_frames > 1:
                name += f"-frame-{frame + 1:04d}"
            stream.add(_rendered(archive, record, frame, options), f"{name}.{suffix}")
    return iter(stream)


def _rendered(
    archive: Archive, record: InstanceRecord, frame: int, options: render.RenderOptions
) -> Iterator[bytes]:
    try:
        yield archive.render_frame(record, frame, options)  # rendered when the ZIP gets here
    except render.RenderError as exc:  # one odd frame must not break the whole download
        log.warning("export: %s frame %d not rendered: %s", record.sop_instance_uid, frame, exc)
