"""DIMSE services against DCMTK (echoscu, storescu, findscu, movescu, getscu, storescp), on
both blob stores: files and S3 (issue 20).

DCMTK's tools exit 0 even when instances fail, so every test checks what the other side holds.
"""

from __future__ import annotations

import io
import struct
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

from tests.conftest import SAMPLES, samples_matching, start_server
from tests.dimse.conftest import Dimse
from tests.factories import make_instance
from tests.objectstore import s3_env

#: storescu options that propose a file's own transfer syntax (and uncompressed fallbacks).
PROPOSE = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
}
#: SOP classes that DCMTK 3.6.7's storescu does not know (it refuses to start with them).
NEWER_THAN_DCMTK = {"1.2.840.10008.5.1.4.1.1.66.7"}  # Label Map Segmentation
CT_3SLICE = samples_matching(SAMPLES / "dcmqi" / "ct-3slice", "*.dcm")


@pytest.fixture(scope="module", params=["files", "s3"])
def dimse(
    request: pytest.FixtureRequest, dimse: Dimse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dimse]:
    """The shared listener (blobs in files), then one whose blobs are in an S3 bucket, with
    the same modalities and the same storescp destination."""
    if request.param == "files":
        yield dimse
        return
    env = {"KLINIKA_MODALITIES": dimse.server.env["KLINIKA_MODALITIES"], **s3_env(request)}
    server = start_server(tmp_path_factory.mktemp("dimse-s3") / "data", env)
    try:
        port = int(server.env["KLINIKA_DIMSE_PORT"])
        yield Dimse(server, port, dimse.store_dir, dimse.store_port)
    finally:
        server.stop()


def dataset_part(part10: bytes) -> bytes:
    """The data set after the File Meta Information (PS3.10 §7.1)."""
    (group_length,) = struct.unpack_from("<L", part10, 140)
    return part10[144 + group_length :]


def same_content(first: bytes, second: bytes) -> bool:
    """Equal data sets element by element (pixel data included), file meta aside."""
    a = pydicom.dcmread(io.BytesIO(first))
    b = pydicom.dcmread(io.BytesIO(second))
    for ds in (a, b):  # group lengths are retired and rewritten freely by DCMTK (PS3.5 §7.2)
        for tag in [element.tag for element in ds if element.tag.element == 0]:
            del ds[tag]
    pixels_a, pixels_b = a.pop(0x7FE00010, None), b.pop(0x7FE00010, None)
    if (pixels_a is None) != (pixels_b is None):
        return False
    if pixels_a is not None:
        value_a, value_b = bytes(pixels_a.value), bytes(pixels_b.value)
        # an odd-length value is padded to even length by DCMTK on the way (PS3.5 §7.1.1)
        if value_a != value_b and value_a.rstrip(b"\x00") != value_b.rstrip(b"\x00"):
            return False
    return bool(a == b)


def stored_bytes(dimse: Dimse, path: Path) -> bytes | None:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    url = (
        f"{dimse.server.dicomweb}/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    response = requests.get(
        url,
        headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
            **dimse.server.headers,
        },
        timeout=30,
    )
    if response.status_code != 200:
        return None
    body = response.content
    start = body.index(b"\r\n\r\n") + 4
    end = body.rindex(b"\r\n--")
    return body[start:end]


def sendable_samples() -> dict[str, list[Path]]:
    """Valid samples grouped by transfer syntax, one file per SOP Instance UID."""
    groups: dict[str, list[Path]] = defaultdict(list)
    seen: set[str] = set()
    for path in samples_matching(SAMPLES, "**/*.dcm"):
        if path.name.startswith("malformed_"):
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "StudyInstanceUID" not in ds or str(ds.SOPInstanceUID) in seen:
            continue
        if ds.SOPClassUID in NEWER_THAN_DCMTK:
            continue
        syntax = str(ds.file_meta.TransferSyntaxUID)
        if syntax in PROPOSE:
            seen.add(str(ds.SOPInstanceUID))
            groups[syntax].append(path)
    return groups


def test_echo(dimse: Dimse) -> None:
    result = dimse.run("echoscu")
    assert result.returncode == 0, result.stderr


def test_storescu_of_every_transfer_syntax_stores_the_data_set_as_sent(dimse: Dimse) -> None:
    groups = sendable_samples()
    assert len(groups) >= 4
    for syntax, paths in groups.items():
        dimse.run(
            "storescu", "-R", "-nh", PROPOSE[syntax], files=tuple(map(str, paths)), check=False
        )
        for path in paths:
            stored = stored_bytes(dimse, path)
            assert stored is not None, f"{path.name} ({syntax}) was not stored"
            # DCMTK may re-encode sequence lengths on the way; the content must be equal.
            assert same_content(stored, path.read_bytes()), path.name


def find(dimse: Dimse, tmp_path: Path, *keys: str, model: str = "-S") -> list[pydicom.Dataset]:
    out = tmp_path / f"find{abs(hash(keys))}"
    out.mkdir()
    args = ["findscu", model, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = dimse.run(*args)
    assert "Find Response" in result.stderr or result.returncode == 0, result.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


@pytest.fixture(scope="module")
def ct_stored(dimse: Dimse) -> list[Path]:
    dimse.run("storescu", "-xe", files=tuple(map(str, CT_3SLICE)))
    return CT_3SLICE


def test_findscu_study_level_wildcard_and_date_range(dimse: Dimse, ct_stored, tmp_path) -> None:
    ds = pydicom.dcmread(ct_stored[0], stop_before_pixels=True)
    name = str(ds.PatientName)
    found = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        f"PatientName={name[:3]}*",
        "StudyInstanceUID",
        "StudyDate",
        "NumberOfStudyRelatedInstances",
    )
    uids = {str(r.StudyInstanceUID) for r in found}
    assert str(ds.StudyInstanceUID) in uids
    match = next(r for r in found if r.StudyInstanceUID == ds.StudyInstanceUID)
    assert int(match.NumberOfStudyRelatedInstances) >= 3
    ranged = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        f"StudyDate={ds.StudyDate}-",
        "StudyInstanceUID",
    )
    assert str(ds.StudyInstanceUID) in {str(r.StudyInstanceUID) for r in ranged}
    none = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        "StudyDate=19000101-19000102",
        "StudyInstanceUID",
    )
    assert none == []


def test_findscu_series_and_image_levels_with_uid_list(dimse: Dimse, ct_stored, tmp_path) -> None:
    first, second = (pydicom.dcmread(p, stop_before_pixels=True) for p in ct_stored[:2])
    series = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality",
    )
    assert str(first.SeriesInstanceUID) in {str(s.SeriesInstanceUID) for s in series}
    assert all(s.QueryRetrieveLevel == "SERIES" and "Modality" in s for s in series)
    images = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
        f"SOPInstanceUID={first.SOPInstanceUID}\\{second.SOPInstanceUID}",
    )
    assert {str(i.SOPInstanceUID) for i in images} == {
        str(first.SOPInstanceUID),
        str(second.SOPInstanceUID),
    }


def test_findscu_patient_root_and_cyrillic_names(dimse: Dimse, tmp_path) -> None:
    cyrillic = SAMPLES / "generated" / "cyrillic_iso_ir_192_utf8.dcm"
    dimse.run("storescu", "-xe", files=(str(cyrillic),))
    found = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=PATIENT",
        "SpecificCharacterSet=ISO_IR 192",
        "PatientName=Иван*",
        "PatientID",
        model="-P",
    )
    assert any(str(r.PatientName).startswith("Иванов") for r in found)


def test_movescu_sends_a_study_to_storescp(dimse: Dimse, ct_stored) -> None:
    ds = pydicom.dcmread(ct_stored[0], stop_before_pixels=True)
    # The study also holds SEG instances, which DCMTK's storescp does not accept: those
    # sub-operations fail (and are reported), the CT slices must arrive intact.
    result = dimse.run(
        "movescu",
        "-S",
        "-aem",
        "STORESCP",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={ds.StudyInstanceUID}",
        check=False,
    )
    assert "Move Response" in result.stderr or result.returncode in (0, 68), result.stderr
    received = {pydicom.dcmread(p).SOPInstanceUID: p for p in dimse.store_dir.iterdir()}
    for path in ct_stored:
        sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert sop in received
        assert same_content(received[sop].read_bytes(), path.read_bytes())


def test_movescu_to_an_unknown_destination_is_refused(dimse: Dimse, ct_stored) -> None:
    ds = pydicom.dcmread(ct_stored[0], stop_before_pixels=True)
    result = dimse.run(
        "movescu",
        "-S",
        "-aem",
        "NOBODY",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={ds.StudyInstanceUID}",
        check=False,
    )
    assert "MoveDestinationUnknown" in result.stderr


def test_getscu_retrieves_a_series_on_the_same_association(
    dimse: Dimse, ct_stored, tmp_path
) -> None:
    ds = pydicom.dcmread(ct_stored[0], stop_before_pixels=True)
    out = tmp_path / "get"
    out.mkdir()
    result = dimse.run(
        "getscu",
        "-S",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={ds.StudyInstanceUID}",
        "-k",
        f"SeriesInstanceUID={ds.SeriesInstanceUID}",
    )
    assert result.returncode == 0, result.stderr
    got = {pydicom.dcmread(p).SOPInstanceUID: p for p in out.iterdir()}
    assert len(got) == len(ct_stored)
    for path in ct_stored:
        original = pydicom.dcmread(path)
        received = got[original.SOPInstanceUID]
        assert same_content(received.read_bytes(), path.read_bytes()), path.name
        assert np.array_equal(pydicom.dcmread(received).pixel_array, original.pixel_array)


def test_four_senders_and_queries_at_once_lose_nothing(dimse: Dimse, tmp_path: Path) -> None:
    import subprocess
    import threading

    from tests.dimse.conftest import DCMTK_ENV

    studies = {}
    for sender in range(4):
        folder = tmp_path / f"modality{sender}"
        folder.mkdir()
        study = f"1.2.826.0.1.3680043.99.4.{sender}"
        for n in range(15):
            data = make_instance(
                study_uid=study,
                series_uid=study + ".1",
                sop_uid=f"{study}.1.{n}",
                rows=64,
                columns=64,
            )
            (folder / f"{n}.dcm").write_bytes(data)
        studies[study] = folder
    senders = [
        subprocess.Popen(
            [
                "storescu",
                "-aet",
                f"MOD{i}",
                "-aec",
                "KLINIKA",
                "127.0.0.1",
                str(dimse.port),
                *map(str, sorted(folder.iterdir())),
            ],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, folder in enumerate(studies.values())
    ]
    errors: list[str] = []

    def keep_querying() -> None:
        while any(s.poll() is None for s in senders):
            result = dimse.run(
                "findscu",
                "-S",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                "StudyInstanceUID",
                check=False,
            )
            if result.returncode != 0:
                errors.append(result.stderr)

    querier = threading.Thread(target=keep_querying)
    querier.start()
    for process in senders:
        assert process.wait(timeout=120) == 0
    querier.join()
    assert errors == []
    for study in studies:
        response = requests.get(
            f"{dimse.server.dicomweb}/studies?StudyInstanceUID={study}",
            headers=dimse.server.headers,
            timeout=10,
        ).json()
        assert response[0]["00201208"]["Value"] == [15], study


def test_findscu_patient_level_counts_studies_series_and_instances(
    dimse: Dimse, tmp_path: Path
) -> None:
    """NumberOfPatientRelated* at PATIENT level (PS3.4 C.6.1.1.2), counted by the one query
    engine: two studies of one patient, three series, four instances."""
    patient = f"COUNTS{abs(hash(tmp_path)) % 10**8}"
    study_a, study_b = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    series = [pydicom.uid.generate_uid() for _ in range(3)]
    files = []
    for index, (study, one_series) in enumerate(
        [(study_a, series[0]), (study_a, series[0]), (study_a, series[1]), (study_b, series[2])]
    ):
        path = tmp_path / f"i{index}.dcm"
        path.write_bytes(
            make_instance(
                study_uid=study, series_uid=one_series, PatientID=patient, PatientName="Count^Me"
            )
        )
        files.append(str(path))
    dimse.run("storescu", "-xe", files=tuple(files))
    (answer,) = find(
        dimse,
        tmp_path,
        "QueryRetrieveLevel=PATIENT",
        f"PatientID={patient}",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
        model="-P",
    )
    assert answer.NumberOfPatientRelatedStudies == 2
    assert answer.NumberOfPatientRelatedSeries == 3
    assert answer.NumberOfPatientRelatedInstances == 4
    qido = requests.get(
        f"{dimse.server.dicomweb}/studies",
        params={
            "PatientID": patient,
            "includefield": "NumberOfPatientRelatedStudies,NumberOfPatientRelatedInstances",
        },
        headers={"Accept": "application/dicom+json", **dimse.server.headers},
        timeout=30,
    )
    assert qido.status_code == 200
    for study in qido.json():
        assert study["00201200"]["Value"] == [2]  # NumberOfPatientRelatedStudies
        assert study["00201204"]["Value"] == [4]  # NumberOfPatientRelatedInstances
