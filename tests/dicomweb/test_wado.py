"""WADO-RS and WADO-URI: bytes, metadata, frames, bulk data, rendered, thumbnails."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import requests
from PIL import Image
from pydicom.pixels import pixel_array
from pydicom.uid import generate_uid

from tests.conftest import sample_files
from tests.dicomweb.conftest import Loaded, stow

AS_STORED = (("application/dicom", "*"),)


_picked: dict[tuple[str, str], tuple[str, str, str, bytes]] = {}  # (server, name)


def pick(loaded: Loaded, name: str) -> tuple[str, str, str, bytes]:
    """A sample stored under UIDs of its own (pydicom's variants of one image share UIDs).

    The data set is re-identified and saved in its own transfer syntax, pixel data untouched.
    """
    key = (loaded.server.url, name)  # one entry per server: `loaded` runs on files and S3
    if key not in _picked:
        path = next(p for p in sample_files() if p.name == name)
        ds = pydicom.dcmread(path)
        study, series, sop = (generate_uid(entropy_srcs=[name, k]) for k in ("st", "se", "sop"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        buffer = io.BytesIO()
        ds.save_as(buffer)
        data = buffer.getvalue()
        response = stow(loaded.server, [data])
        assert response.status_code == 200, response.text
        _picked[key] = (study, series, sop, data)
    return _picked[key]


def original(loaded: Loaded, name: str) -> tuple[str, str, str, bytes]:
    """A sample as it was loaded by the package fixture."""
    uid, path = next((u, p) for u, p in loaded.sent.items() if p.name == name)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), uid, path.read_bytes()


def raw_get(loaded: Loaded, path: str, accept: str, **headers: str) -> requests.Response:
    return requests.get(
        loaded.server.dicomweb + path,
        headers={"Accept": accept, **loaded.server.headers, **headers},
        timeout=30,
    )


def test_every_stored_instance_comes_back_byte_for_byte(loaded: Loaded) -> None:
    referenced = loaded.referenced()
    for uid, path in loaded.sent.items():
        if uid not in referenced:
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        url = f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{uid}"
        response = raw_get(
            loaded, url, 'multipart/related; type="application/dicom"; transfer-syntax=*'
        )
        assert response.status_code == 200, path.name
        assert path.read_bytes() in response.content, path.name


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_implicit.dcm",
        "SC_rgb_rle_2frame.dcm",
    ],
)
def test_default_retrieve_transcodes_to_explicit_little_endian(loaded: Loaded, name: str) -> None:
    study, series, sop, data = pick(loaded, name)
    ds = loaded.client.retrieve_instance(
        study, series, sop, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),)
    )
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    original = pydicom.dcmread(io.BytesIO(data))
    assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_retrieve_study_and_series_through_dicomweb_client(loaded: Loaded) -> None:
    study, series, sop, _ = pick(loaded, "CT_small.dcm")
    assert {
        str(d.SOPInstanceUID) for d in loaded.client.retrieve_study(study, media_types=AS_STORED)
    } >= {sop}
    assert [
        str(d.SOPInstanceUID)
        for d in loaded.client.retrieve_series(study, series, media_types=AS_STORED)
    ] == [sop]


def test_series_metadata_has_every_instance_and_bulk_data_uris(loaded: Loaded) -> None:
    study, series, sop, data = original(loaded, "000000.dcm")
    metadata = loaded.client.retrieve_series_metadata(study, series)
    assert len(metadata) == 20
    first = next(m for m in metadata if m["00080018"]["Value"] == [sop])
    for tag in ("00200032", "00200037", "00280030", "00280010", "00280011"):
        assert tag in first
    uri = first["7FE00010"]["BulkDataURI"]
    assert uri.startswith(loaded.server.dicomweb)
    pixels = b"".join(loaded.client.retrieve_bulkdata(uri))
    assert pixels == pydicom.dcmread(io.BytesIO(data)).PixelData


def test_metadata_etag_and_gzip(loaded: Loaded) -> None:
    study, series, _, _ = original(loaded, "000000.dcm")
    path = f"/studies/{study}/series/{series}/metadata"
    first = raw_get(loaded, path, "application/dicom+json", **{"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip"
    again = raw_get(
        loaded, path, "application/dicom+json", **{"If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304


def test_study_and_instance_metadata(loaded: Loaded) -> None:
    study, series, sop, _ = original(loaded, "000000.dcm")
    assert len(loaded.client.retrieve_study_metadata(study)) >= 20
    instance = loaded.client.retrieve_instance_metadata(study, series, sop)
    assert instance["00080018"]["Value"] == [sop]


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "SC_rgb_rle_2frame.dcm",
        "examples_ybr_color.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
    ],
)
def test_frames_decode_to_the_source_pixels(loaded: Loaded, name: str) -> None:
    """Frames as stored (transfer-syntax=*), and decoded to octet-stream, match the source."""
    study, series, sop, data = pick(loaded, name)
    source = pydicom.dcmread(io.BytesIO(data))
    frames = int(source.get("NumberOfFrames", 1))
    numbers = list(range(1, min(frames, 3) + 1))
    url = f"/studies/{study}/series/{series}/instances/{sop}/frames/{','.join(map(str, numbers))}"
    as_stored = raw_get(
        loaded, url, "multipart/related; type=application/octet-stream; transfer-syntax=*"
    )
    assert as_stored.status_code == 200
    assert as_stored.text.count("transfer-syntax=") >= len(numbers)
    native = loaded.client.retrieve_instance_frames(
        study,
        series,
        sop,
        numbers,
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    for number, payload in zip(numbers, native, strict=True):
        expected = pixel_array(io.BytesIO(data), index=number - 1, raw=True)
        got = np.frombuffer(payload, dtype=expected.dtype.newbyteorder("<")).reshape(expected.shape)
        if source.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50":
            assert (
                np.abs(got.astype(int) - expected.astype(int)).max() <= 2
            )  # lossy decoder rounding
        else:
            assert np.array_equal(got, expected), name


def test_missing_frame_is_404_and_bad_frame_list_is_400(loaded: Loaded) -> None:
    study, series, sop, _ = pick(loaded, "CT_small.dcm")
    base = f"/studies/{study}/series/{series}/instances/{sop}/frames/"
    assert (
        raw_get(loaded, base + "2", "multipart/related; type=application/octet-stream").status_code
        == 404
    )
    assert (
        raw_get(loaded, base + "x", "multipart/related; type=application/octet-stream").status_code
        == 400
    )


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "examples_ybr_color.dcm"]
)
def test_rendered_and_thumbnail_are_images(loaded: Loaded, name: str) -> None:
    study, series, sop, _ = pick(loaded, name)
    jpeg = loaded.client.retrieve_instance_rendered(study, series, sop, media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    png = raw_get(
        loaded,
        f"/studies/{study}/series/{series}/instances/{sop}/rendered?viewport=64,64",
        "image/png",
    )
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and max(image.size) == 64
    for path in (f"/studies/{study}/thumbnail", f"/studies/{study}/series/{series}/thumbnail"):
        response = raw_get(loaded, path, "image/jpeg")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"


def test_wado_uri_returns_the_file_and_a_jpeg(loaded: Loaded) -> None:
    study, series, sop, data = pick(loaded, "CT_small.dcm")
    base = (
        f"{loaded.server.url}/wado?requestType=WADO"
        f"&studyUID={study}&seriesUID={series}&objectUID={sop}"
    )
    auth = loaded.server.headers
    assert (
        requests.get(base + "&contentType=application/dicom", headers=auth, timeout=10).content
        == data
    )
    jpeg = requests.get(base, headers=auth, timeout=10)
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"


def test_unknown_study_is_404(loaded: Loaded) -> None:
    assert (
        raw_get(
            loaded, "/studies/1.2.3.999", "multipart/related; type=application/dicom"
        ).status_code
        == 404
    )


def wado_uri(loaded: Loaded, name: str, **params: str) -> requests.Response:
    study, series, sop, _ = pick(loaded, name)
    query = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    return requests.get(
        loaded.server.url + "/wado",
        params=query | params,
        headers=loaded.server.headers,
        timeout=30,
    )


def test_wado_uri_anonymize_returns_a_deidentified_instance(loaded: Loaded) -> None:
    original = pydicom.dcmread(io.BytesIO(pick(loaded, "CT_small.dcm")[3]))
    answer = wado_uri(loaded, "CT_small.dcm", contentType="application/dicom", anonymize="yes")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    result = pydicom.dcmread(io.BytesIO(answer.content))
    assert result.PatientIdentityRemoved == "YES"
    assert str(original.PatientName).encode() not in answer.content
    assert result.SOPInstanceUID != original.SOPInstanceUID
    assert np.array_equal(result.pixel_array, original.pixel_array)
    assert wado_uri(loaded, "CT_small.dcm", anonymize="yes").status_code == 400  # JPEG asked
    assert wado_uri(loaded, "CT_small.dcm", anonymize="no").status_code == 400


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"frameNumber": "abc"}, 400),
        ({"frameNumber": "0"}, 400),
        ({"frameNumber": "99"}, 404),
        ({"windowCenter": "x", "windowWidth": "400"}, 400),
        ({"rows": "a", "columns": "64"}, 400),
        ({"imageQuality": "500"}, 400),
        ({"imageQuality": "40"}, 200),
        ({"windowCenter": "40", "windowWidth": "400", "rows": "64", "columns": "64"}, 200),
    ],
)
def test_wado_uri_parameters_are_checked(
    loaded: Loaded, params: dict[str, str], status: int
) -> None:
    assert wado_uri(loaded, "CT_small.dcm", **params).status_code == status


def test_wado_uri_serves_an_encapsulated_pdf_sandboxed(loaded: Loaded) -> None:
    answer = wado_uri(loaded, "encapsulated_pdf.dcm", contentType="application/pdf")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF")
    assert answer.headers["content-security-policy"].startswith("sandbox")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert wado_uri(loaded, "encapsulated_pdf.dcm").status_code == 406  # no JPEG of a PDF
