"""Streamed ZIP archives of a study or series (zipstream-ng writes ZIP64 when needed)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread
from pydicom.fileset import FileSet
from zipstream import ZIP_STORED, ZipStream

from klinika.archive import Archive, InstanceRecord
from klinika.dicom import render

log = logging.getLogger(__name__)
IMAGE_SUFFIX = {"image/jpeg": "jpg", "image/png": "png"}
_PIXEL_DATA = '"7FE00010"'  # its tag in the stored DICOM JSON
CHUNK_BYTES = 1 << 20


def _records(archive: Archive, study_uid: str, series_uid: str | None) -> list[InstanceRecord]:
    """The instances to export, in series and instance order (raises NotFound when none)."""
    return archive.instances(study_uid, series_uid)


def dicomdir(archive: Archive, records: list[InstanceRecord]) -> tuple[bytes, dict[str, str]]:
    """A DICOMDIR for ``records`` (PS3.10 §8, PS3.3 F.5) and each instance's path in the file-set.

    pydicom's FileSet builds the directory records; it is given header-only copies of the
    instances (read up to the pixel data, not the whole file), and the stored files are then
    placed at the paths it chose.
    """
    file_set = FileSet()
    file_set.ID = "KLINIKA"
    with tempfile.TemporaryDirectory(prefix="klinika-dicomdir-") as work:
        for record in records:
            with archive.blobs.open(record.blob_key) as stored:
                header = dcmread(stored, stop_before_pixels=True)
            file_set.add(header)
        file_set.write(work)
        paths = {
            str(instance.SOPInstanceUID): Path(instance.path).relative_to(work).as_posix()
            for instance in file_set
        }
        return (Path(work) / "DICOMDIR").read_bytes(), paths


def dicom_zip(archive: Archive, study_uid: str, series_uid: str | None = None) -> Iterator[bytes]:
    """The stored DICOM files (bytes as received) and a DICOMDIR, as a streamed ZIP.

    The instances and the DICOMDIR are found now (NotFound is raised here, before anything is
    sent); the files are read while the ZIP is consumed."""
    records = _records(archive, study_uid, series_uid)
    directory, paths = dicomdir(archive, records)
    stream = ZipStream(compress_type=ZIP_STORED)  # DICOM pixel data rarely compresses well
    stream.add(directory, "DICOMDIR")
    for record in records:
        stream.add(_blob(archive, record), paths[record.sop_instance_uid])
    return iter(stream)


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
        if _PIXEL_DATA not in record.metadata_json:
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
