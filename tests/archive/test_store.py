"""The one ingest path: validation, durability, duplicates, counts, deletes."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from klinika.archive import Archive
from klinika.config import DuplicatePolicy
from klinika.dicom.attributes import Level
from klinika.errors import NotFound
from klinika.index import schema
from klinika.index.query import Query
from klinika.storage import FileStore
from tests.conftest import SAMPLES, samples_matching
from tests.factories import make_instance

MALFORMED = samples_matching(SAMPLES / "generated", "malformed_*.dcm")


def row_count(archive: Archive, table: sa.Table) -> int:
    with archive.database.reader.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_stored_bytes_are_kept_as_received_under_their_sha256(archive: Archive) -> None:
    data = make_instance()
    outcome = archive.store(data)
    assert outcome.status == "stored"
    record = archive.instances(outcome.study_uid, outcome.series_uid, outcome.sop_instance_uid)[0]
    assert record.blob_key == hashlib.sha256(data).hexdigest()
    assert archive.read(record) == data
    assert archive.blobs.read_stored(record.blob_key).payload == data  # kept as received


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_files_are_rejected_and_leave_no_trace(archive: Archive, path: Path) -> None:
    outcome = archive.store(path.read_bytes())
    assert outcome.status == "rejected"
    assert outcome.reason and outcome.message
    assert row_count(archive, schema.instances) == 0
    assert row_count(archive, schema.studies) == 0
    assert list(archive.blobs.blob_keys()) == []


def test_duplicate_policy_keep_reports_a_duplicate_and_keeps_the_first(archive: Archive) -> None:
    first = make_instance(sop_uid="1.2.3.4.5", PatientName="First")
    second = make_instance(sop_uid="1.2.3.4.5", PatientName="Second")
    assert archive.store(first).status == "stored"
    outcome = archive.store(second)
    assert outcome.status == "duplicate"
    assert row_count(archive, schema.instances) == 1
    assert len(list(archive.blobs.blob_keys())) == 1


def test_duplicate_policy_overwrite_replaces_the_blob(tmp_path: Path, archive: Archive) -> None:
    archive.ingest.duplicate_policy = DuplicatePolicy.OVERWRITE
    study = "1.2.3.9"
    first = make_instance(study_uid=study, sop_uid="1.2.3.4.6", SeriesDescription="First")
    second = make_instance(study_uid=study, sop_uid="1.2.3.4.6", SeriesDescription="Second")
    archive.store(first)
    assert archive.store(second).status == "replaced"
    record = archive.instances(study)[0]
    assert archive.read(record) == second
    assert list(archive.blobs.blob_keys()) == [record.blob_key]


def test_duplicate_policy_reject_refuses_the_second(archive: Archive) -> None:
    archive.ingest.duplicate_policy = DuplicatePolicy.REJECT
    data = make_instance(sop_uid="1.2.3.4.7")
    archive.store(data)
    outcome = archive.store(make_instance(sop_uid="1.2.3.4.7"))
    assert (outcome.status, outcome.reason) == ("rejected", "duplicate")


def test_counts_and_modalities_are_kept_current(archive: Archive) -> None:
    study = "1.2.3.10"
    archive.store_many(
        [make_instance(study_uid=study, series_uid="1.2.3.10.1", Modality="CT") for _ in range(3)]
        + [make_instance(study_uid=study, series_uid="1.2.3.10.2", Modality="SR")]
    )
    match = archive.search(Query(Level.STUDY, match={"StudyInstanceUID": study})).matches[0]
    assert match["00201206"]["Value"] == [2]
    assert match["00201208"]["Value"] == [4]
    assert match["00080061"]["Value"] == ["CT", "SR"]


def test_study_mismatch_is_rejected(archive: Archive) -> None:
    outcome = archive.store_many([make_instance(study_uid="1.2.3.11")], study_uid="1.2.3.12")[0]
    assert (outcome.status, outcome.reason) == ("rejected", "study-mismatch")
    assert row_count(archive, schema.instances) == 0


def test_series_metadata_changes_when_the_series_grows(archive: Archive) -> None:
    study, series = "1.2.3.13", "1.2.3.13.1"
    archive.store(make_instance(study_uid=study, series_uid=series))
    before = archive.series_metadata(study, series, "http://x/dicom-web")
    assert archive.series_metadata(study, series, "http://x/dicom-web") is before  # cached
    archive.store(make_instance(study_uid=study, series_uid=series))
    after = archive.series_metadata(study, series, "http://x/dicom-web")
    assert after.etag != before.etag
    assert after.body.count(b'"00080018"') == 2
    assert b"klinika-base:" not in after.body
    assert b"http://x/dicom-web/studies/1.2.3.13/series/1.2.3.13.1/instances/" in after.body


def test_delete_removes_rows_and_blobs(archive: Archive) -> None:
    study = "1.2.3.14"
    archive.store_many([make_instance(study_uid=study) for _ in range(2)])
    assert archive.delete(study) == 2
    with pytest.raises(NotFound):
        archive.instances(study)
    for table in (schema.instances, schema.series, schema.studies, schema.patients):
        assert row_count(archive, table) == 0
    assert list(archive.blobs.blob_keys()) == []


def test_a_full_disk_rejects_the_instance_and_indexes_nothing(
    tmp_path: Path, archive: Archive
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        full = Archive(archive.database, FileStore(small / "blobs"))
        outcome = full.store(make_instance(rows=128, columns=256))
        assert (outcome.status, outcome.reason) == ("rejected", "storage-full")
        assert row_count(archive, schema.instances) == 0
        assert list((small / "blobs" / "tmp").iterdir()) == []
        assert full.store(make_instance(rows=8, columns=8)).status == "stored"
    finally:
        subprocess.run(["umount", str(small)], check=False)
