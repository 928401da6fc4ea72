"""The series records held in memory for the frame path follow every change of the series,
also one made by another process (another HTTP worker: another Archive on the same index)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import generate_uid

from klinika.archive import Archive
from klinika.config import DuplicatePolicy
from klinika.errors import NotFound
from tests.factories import make_instance


def other_worker(
    archive: Archive, duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP
) -> Archive:
    """An Archive of its own (its own caches) on the same index and blobs."""
    return Archive(archive.database, archive.blobs, duplicate_policy=duplicate_policy)


def series_of(archive: Archive, count: int) -> tuple[str, str, list[str]]:
    study, series = generate_uid(), generate_uid()
    sops = [
        archive.store(make_instance(study_uid=study, series_uid=series)).sop_instance_uid
        for _ in range(count)
    ]
    return study, series, sops


def test_the_record_is_the_index_record(archive: Archive) -> None:
    study, series, sops = series_of(archive, 3)
    for sop in sops:
        assert archive.instance(study, series, sop) == archive.instances(study, series, sop)[0]
    with pytest.raises(NotFound):
        archive.instance(study, series, generate_uid())
    with pytest.raises(NotFound):
        archive.instance(generate_uid(), series, sops[0])  # the series is not in that study


def test_a_delete_by_another_worker_is_seen_at_once(archive: Archive) -> None:
    study, series, sops = series_of(archive, 3)
    assert archive.instance(study, series, sops[1]).sop_instance_uid == sops[1]  # now cached
    other_worker(archive).delete(study, series, sops[1])
    with pytest.raises(NotFound):
        archive.instance(study, series, sops[1])
    assert archive.instance(study, series, sops[0]).sop_instance_uid == sops[0]
    other_worker(archive).delete(study, series)
    with pytest.raises(NotFound):
        archive.instance(study, series, sops[0])


def test_an_instance_added_or_replaced_by_another_worker_is_seen_at_once(
    archive: Archive,
) -> None:
    study, series, sops = series_of(archive, 2)
    first = archive.instance(study, series, sops[0])
    added = other_worker(archive).store(make_instance(study_uid=study, series_uid=series))
    assert archive.instance(study, series, added.sop_instance_uid).study_uid == study
    replacement = make_instance(study_uid=study, series_uid=series, sop_uid=sops[0], rows=16)
    assert (
        other_worker(archive, duplicate_policy=DuplicatePolicy.OVERWRITE)
        .store(replacement)
        .accepted
    )
    record = archive.instance(study, series, sops[0])
    assert record.blob_key != first.blob_key
    assert pydicom.dcmread(io.BytesIO(archive.read(record))).Rows == 16
