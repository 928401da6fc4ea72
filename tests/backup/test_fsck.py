"""fsck: index against blobs, with the real command line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa

from klinika.dicom.attributes import Level
from klinika.index import schema
from klinika.index.query import Query
from tests.backup.conftest import klinika, runtime_of
from tests.factories import make_instance


def plant_orphan(data_dir: Path, data: bytes) -> str:
    """Write a blob as a crash between fsync and commit leaves it."""
    key = hashlib.sha256(data).hexdigest()
    folder = data_dir / "blobs" / key[:2] / key[2:4]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key).write_bytes(data)
    return key


def test_fsck_finds_an_orphan_a_missing_blob_and_a_flipped_byte(loaded: Path) -> None:
    assert klinika(loaded, "fsck").stdout.strip().endswith("clean")
    blobs = sorted((loaded / "blobs").glob("??/??/*"))
    blobs[0].unlink()  # missing
    corrupted = bytearray(blobs[1].read_bytes())
    corrupted[-1] ^= 0x01
    blobs[1].write_bytes(bytes(corrupted))  # corrupt
    key = plant_orphan(loaded, make_instance(study_uid="1.2.826.0.1.88"))
    result = klinika(loaded, "fsck")
    assert result.returncode == 1
    assert "1 missing, 1 corrupt, 1 orphan(s)" in result.stdout
    assert f"orphans: {key}" in result.stdout

    repaired = klinika(loaded, "fsck", "--repair")
    assert f"re-indexed orphan {key}" in repaired.stdout
    assert repaired.returncode == 1  # missing and corrupt blobs need a restore, not a repair
    assert (loaded / "blobs" / key[:2] / key[2:4] / key).exists()
    with runtime_of(loaded) as runtime:
        found = runtime.archive.search(
            Query(Level.STUDY, match={"StudyInstanceUID": "1.2.826.0.1.88"})
        )
        assert len(found.matches) == 1


def test_fsck_recounts_stale_series_and_study_counts(loaded: Path) -> None:
    with runtime_of(loaded) as runtime, runtime.database.writer.begin() as connection:
        connection.execute(sa.update(schema.series).values(number_of_series_related_instances=99))
        connection.execute(sa.update(schema.studies).values(number_of_study_related_instances=0))
        versions = {
            pk: version
            for pk, version in connection.execute(
                sa.select(schema.series.c.pk, schema.series.c.metadata_version)
            )
        }
    found = klinika(loaded, "fsck")
    assert found.returncode == 1 and "stale_counts: series" in found.stdout
    assert "stale_counts: study" in found.stdout
    assert klinika(loaded, "fsck", "--repair").returncode == 0
    assert klinika(loaded, "fsck").stdout.strip().endswith("clean")
    with runtime_of(loaded) as runtime, runtime.database.reader.connect() as connection:
        after = {
            pk: version
            for pk, version in connection.execute(
                sa.select(schema.series.c.pk, schema.series.c.metadata_version)
            )
        }
    assert all(after[pk] > version for pk, version in versions.items())  # caches rebuilt


def test_fsck_deletes_only_with_delete_orphans_and_only_the_unindexable(loaded: Path) -> None:
    junk = plant_orphan(loaded, b"not a DICOM file at all")
    bad = bytearray(make_instance(study_uid="1.2.826.0.1.89"))
    key = plant_orphan(loaded, bytes(bad))
    bad[-1] ^= 0x01  # now its bytes no longer match its name
    (loaded / "blobs" / key[:2] / key[2:4] / key).write_bytes(bytes(bad))
    klinika(loaded, "fsck", "--repair")
    assert (loaded / "blobs" / junk[:2] / junk[2:4] / junk).exists()
    result = klinika(loaded, "fsck", "--delete-orphans")
    assert f"deleted: {junk}" in result.stdout and f"deleted: {key}" in result.stdout
    assert klinika(loaded, "fsck").stdout.strip().endswith("clean")
