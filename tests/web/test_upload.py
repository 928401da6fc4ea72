"""The upload endpoint's storing of one dropped file: a DICOM file or a ZIP read member by
member through the one ingest path, with an outcome for every file (the browser flow is in
test_console.py)."""

from __future__ import annotations

import io
import tempfile
import zipfile

import pytest

from klinika.archive.sources import ImportLimits
from klinika.web.pages import upload
from klinika.web.pages.upload import store_upload
from tests.conftest import PYDICOM_DATA, SAMPLES

CT = PYDICOM_DATA / "CT_small.dcm"
MR = PYDICOM_DATA / "MR_small.dcm"


def zipped(**members: bytes) -> io.BytesIO:
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("empty-folder/", b"")
        for name, data in members.items():
            bundle.writestr(name, data)
    return body


def by_name(results: list[dict]) -> dict[str, tuple[str, str | None]]:  # type: ignore[type-arg]
    return {r["name"]: (r["status"], r["reason"]) for r in results}


def test_a_zip_gives_one_outcome_per_member_and_folders_none(archive) -> None:  # type: ignore[no-untyped-def]
    body = zipped(**{"ct.dcm": CT.read_bytes(), "mr.dcm": MR.read_bytes(), "a.txt": b"hello"})
    results = store_upload(archive, "cd.zip", body)
    assert by_name(results) == {
        "cd.zip/ct.dcm": ("stored", None),
        "cd.zip/mr.dcm": ("stored", None),
        "cd.zip/a.txt": ("rejected", "unreadable"),
    }
    again = store_upload(archive, "cd.zip", zipped(**{"ct.dcm": CT.read_bytes()}))
    assert by_name(again) == {"cd.zip/ct.dcm": ("duplicate", None)}


def test_a_corrupt_member_is_rejected_and_the_others_are_stored(archive) -> None:  # type: ignore[no-untyped-def]
    body = zipped(**{"ct.dcm": CT.read_bytes(), "mr.dcm": MR.read_bytes()})
    raw = bytearray(body.getvalue())
    start = raw.index(b"mr.dcm", raw.index(b"ct.dcm") + 6) + len(b"mr.dcm")
    raw[start + 100 : start + 140] = bytes(40)  # damage the MR's compressed bytes
    results = by_name(store_upload(archive, "bad.zip", io.BytesIO(bytes(raw))))
    assert results["bad.zip/ct.dcm"] == ("stored", None)
    assert results["bad.zip/mr.dcm"] == ("rejected", "unreadable")


def test_members_and_files_over_the_size_limit_are_refused_unread(
    archive, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    assert CT.stat().st_size > MR.stat().st_size
    limits = ImportLimits(max_instance_bytes=CT.stat().st_size - 1)
    results = by_name(
        store_upload(archive, "z.zip", zipped(ct=CT.read_bytes(), mr=MR.read_bytes()), limits)
    )
    assert results == {"z.zip/ct": ("rejected", "too-large"), "z.zip/mr": ("stored", None)}
    single = store_upload(archive, "ct.dcm", io.BytesIO(CT.read_bytes()), limits)
    assert by_name(single) == {"ct.dcm": ("rejected", "too-large")}
    assert "bytes" in single[0]["message"]


def test_batches_are_bounded_by_count_and_bytes(archive, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(upload, "BATCH_BYTES", 1)  # every member alone
    calls: list[int] = []
    store_many = archive.store_many
    monkeypatch.setattr(
        archive,
        "store_many",
        lambda items, **kw: calls.append(len(items)) or store_many(items, **kw),
    )
    store_upload(archive, "z.zip", zipped(ct=CT.read_bytes(), mr=MR.read_bytes()))
    assert calls == [1, 1]


def test_a_single_malformed_file_says_why(archive) -> None:  # type: ignore[no-untyped-def]
    with tempfile.SpooledTemporaryFile(max_size=1024) as body:  # spilled to disk, as large ones
        body.write((SAMPLES / "generated" / "malformed_bad_dicm_magic.dcm").read_bytes())
        [result] = store_upload(archive, "broken.dcm", body)
    assert result["status"] == "rejected" and result["reason"] and result["message"]
