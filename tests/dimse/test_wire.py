"""What crosses the wire, checked against what the archive holds: data sets stored as sent,
malformed data sets refused with a reason, Q/R identifiers checked against their model,
C-CANCEL honoured. The peers are pynetdicom and DCMTK over TCP; nothing is mocked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    CTImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from tests.conftest import PYDICOM_DATA, SAMPLES, samples_matching
from tests.dimse.conftest import LocalDimse, associate
from tests.dimse.test_dcmtk import dataset_part
from tests.factories import make_instance

GENERATED = SAMPLES / "generated"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


#: pydicom's bundled files for the syntaxes the shared samples lack.
PYDICOM_FILES = (
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "JPGExtended.dcm",  # JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless SV1
    "JPEG2000.dcm",  # JPEG 2000
    "MR_small_bigendian.dcm",  # explicit VR big endian (retired, still sent by old modalities)
    "image_dfl.dcm",  # deflated explicit VR little endian
)


def one_per_transfer_syntax(tmp_path: Path) -> dict[str, Path]:
    """A valid sample for each transfer syntax: the smallest shared sample of each, pydicom's
    files for the JPEG family, and the HTJ2K samples given the study and series UIDs they
    lack (their encapsulated pixel data is written unchanged)."""
    chosen: dict[str, Path] = {}
    candidates = sorted(samples_matching(SAMPLES, "**/*.dcm"), key=lambda p: p.stat().st_size)
    candidates += [PYDICOM_DATA / name for name in PYDICOM_FILES]
    for path in candidates:
        if path.name.startswith("malformed_"):
            continue
        ds = pydicom.dcmread(path, force=True)
        syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
        if not syntax or syntax in chosen:
            continue
        if "StudyInstanceUID" not in ds and path.name.startswith("HTJ2K"):
            ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
            path = tmp_path / path.name
            ds.save_as(path, enforce_file_format=True)
        if "StudyInstanceUID" in ds:
            chosen[syntax] = path
    return chosen


@pytest.fixture
def chunked() -> Iterator[None]:
    """Make pynetdicom send a file's data set bytes as they are, without decoding them."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False


def test_every_transfer_syntax_is_stored_byte_for_byte_as_sent(
    local: LocalDimse, chunked: None, tmp_path: Path
) -> None:
    samples = one_per_transfer_syntax(tmp_path)
    assert set(samples) >= {
        "1.2.840.10008.1.2",  # implicit VR little endian
        EXPLICIT_LE,
        "1.2.840.10008.1.2.1.99",  # deflate
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.70",  # JPEG lossless
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.8.1",  # deflated image frame compression
    }
    contexts = []
    for path in samples.values():
        meta = pydicom.dcmread(path, stop_before_pixels=True)
        contexts.append((str(meta.SOPClassUID), [str(meta.file_meta.TransferSyntaxUID)]))
    assoc = associate(local.port, *contexts)
    try:
        for syntax, path in samples.items():
            answer = assoc.send_c_store(path)
            assert answer.Status == 0x0000, (path.name, syntax, answer)
    finally:
        assoc.release()
    for syntax, path in samples.items():
        sent = path.read_bytes()
        stored = local.stored(sent)
        assert dataset_part(stored) == dataset_part(sent), (path.name, syntax)
        stored_meta = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
        assert stored_meta.TransferSyntaxUID == syntax


def with_file_meta(tmp_path: Path, name: str, data_set: bytes) -> Path:
    """A Part-10 file around raw data set bytes, so that they can be sent as they are."""
    meta = Dataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.99.77.1"
    meta.TransferSyntaxUID = EXPLICIT_LE
    path = tmp_path / name
    pydicom.dcmwrite(
        path, pydicom.FileDataset(path, Dataset(), file_meta=meta), enforce_file_format=True
    )
    path.write_bytes(path.read_bytes() + data_set)
    return path


def test_malformed_data_sets_fail_with_a_reason_and_nothing_is_stored(
    local: LocalDimse, chunked: None, tmp_path: Path
) -> None:
    # The file-level damage (bad magic, no meta, wrong meta length, empty) does not survive
    # the wire: only the data set is sent. These are the damaged data sets that can be sent.
    malformed = [
        GENERATED / "malformed_truncated_in_pixeldata.dcm",
        GENERATED / "malformed_truncated_in_header.dcm",
        GENERATED / "malformed_cyrillic_utf8_no_charset.dcm",
        GENERATED / "malformed_cyrillic_utf8_declared_latin1.dcm",
        with_file_meta(
            tmp_path, "not_dicom.dcm", (GENERATED / "malformed_not_dicom.dcm").read_bytes()
        ),
    ]
    assoc = associate(
        local.port, (CTImageStorage, [EXPLICIT_LE]), (SecondaryCaptureImageStorage, [EXPLICIT_LE])
    )
    try:
        for path in malformed:
            answer = assoc.send_c_store(path)
            assert answer.Status in (0xA900, 0xC000), (path.name, answer)
            assert answer.ErrorComment, path.name
        _config.STORE_SEND_CHUNKED_DATASET = False
        missing_uid = pydicom.dcmread(io.BytesIO(make_instance()))
        del missing_uid.StudyInstanceUID
        answer = assoc.send_c_store(missing_uid)
        assert answer.Status == 0xA900 and "StudyInstanceUID" in str(answer.ErrorComment)
        # the association is still usable
        good = pydicom.dcmread(io.BytesIO(make_instance(PatientID="AFTER-BAD")))
        assert assoc.send_c_store(good).Status == 0x0000
    finally:
        assoc.release()
    for path in malformed[:4]:
        sop = pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID
        assert not local.holds(str(sop)), path.name
    assert not local.holds(str(missing_uid.SOPInstanceUID))
    assert local.holds(str(good.SOPInstanceUID))


def cancel_after_first_match(assoc: Association, identifier: Dataset, msg_id: int) -> list[int]:
    """C-FIND, C-CANCEL once the first match arrives (as findscu --cancel 1); the statuses."""
    find = StudyRootQueryRetrieveInformationModelFind
    statuses = []
    for answer, _ in assoc.send_c_find(identifier, find, msg_id=msg_id):
        statuses.append(int(answer.Status))
        if len(statuses) == 1:
            assoc.send_c_cancel(msg_id, assoc.accepted_contexts[0].context_id)
    return statuses


def test_c_cancel_stops_the_pending_find_responses(local: LocalDimse) -> None:
    matches = 300
    outcomes = local.archive.store_many(
        make_instance(PatientName="Cancel^Me", PatientID=f"C{n}") for n in range(matches)
    )
    assert {o.status for o in outcomes} == {"stored"}
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientName = "Cancel*"
    identifier.StudyInstanceUID = ""
    find = StudyRootQueryRetrieveInformationModelFind
    assoc = associate(local.port, find)
    try:
        everything = [int(status.Status) for status, _ in assoc.send_c_find(identifier, find)]
        assert everything == [0xFF00] * matches + [0x0000]
        # The C-CANCEL races the SCP's pending responses; pynetdicom also drops a C-CANCEL
        # that arrives before the handler starts. A few tries make the test immune to load.
        for attempt in range(5):
            cancelled = cancel_after_first_match(assoc, identifier, msg_id=10 + attempt)
            if cancelled[-1] == 0xFE00:
                break
        assert cancelled[-1] == 0xFE00, "no C-FIND was cancelled in 5 tries"
        assert set(cancelled[:-1]) == {0xFF00} and len(cancelled) <= matches
        # the association is still usable
        assert [int(s.Status) for s, _ in assoc.send_c_find(identifier, find)][-1] == 0
    finally:
        assoc.release()


def test_study_root_has_no_patient_level(local: LocalDimse) -> None:
    local.archive.store(make_instance(PatientID="ROOTED"))
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "PATIENT"
    identifier.PatientID = "ROOTED"
    find, get, move = (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )
    assoc = associate(local.port, find, get, move)
    try:
        answers = [status for status, _ in assoc.send_c_find(identifier, find)]
        assert answers[-1].Status == 0xA900 and "PATIENT" in answers[-1].ErrorComment
        answers = [status for status, _ in assoc.send_c_get(identifier, get)]
        assert answers[-1].Status == 0xA900
        answers = [status for status, _ in assoc.send_c_move(identifier, "NOBODY", move)]
        assert answers[-1].Status == 0xA801  # the destination is checked first
    finally:
        assoc.release()
