"""Study management through the one write path: edits, merges, split and delete rewrite the
stored files, switch the index in one transaction, keep one patient per study, remove the
old blobs, and are one audit event each. On SQLite and PostgreSQL, files and S3."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from klinika.archive.management import StudyManagement
from klinika.audit import Actor, AuditFilter
from klinika.config import load_settings
from klinika.dicom.edit import rewrite
from klinika.errors import Conflict, InvalidChange, NotFound
from klinika.index import schema
from klinika.reports import Draft
from klinika.runtime import Runtime
from tests.conftest import SAMPLES
from tests.factories import make_instance

ADMIN = Actor("admin", "admin")


@pytest.fixture
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A fresh installation (files store) on each index."""
    settings = load_settings(
        env={}, data_dir=tmp_path / "data", database_url=database_url, fsync=False
    )
    with Runtime(settings) as built:
        yield built


@pytest.fixture
def any_store(tmp_path: Path, database_url: str, blob_env: dict[str, str]) -> Iterator[Runtime]:
    """A fresh installation on each index and each blob store (files, S3)."""
    settings = load_settings(
        env=blob_env, data_dir=tmp_path / "data", database_url=database_url, fsync=False
    )
    with Runtime(settings) as built:
        yield built


def store_study(
    runtime: Runtime, patient: str, name: str, series: int = 1, per: int = 1, **attributes: object
) -> tuple[str, list[str]]:
    study = generate_uid()
    series_uids = [generate_uid() for _ in range(series)]
    for number, series_uid in enumerate(series_uids, 1):
        for _ in range(per):
            outcome = runtime.archive.store(
                make_instance(
                    study_uid=study,
                    series_uid=series_uid,
                    PatientID=patient,
                    PatientName=name,
                    SeriesNumber=number,
                    **attributes,
                )
            )
            assert outcome.status == "stored", outcome
    return study, series_uids


def study_rows(runtime: Runtime) -> dict[str, tuple[str, int, int]]:
    """study uid -> (patient id, series count, instance count), from the index."""
    studies, patients = schema.studies, schema.patients
    with runtime.database.reader.connect() as connection:
        rows = connection.execute(
            sa.select(
                studies.c.study_instance_uid,
                patients.c.patient_id,
                studies.c.number_of_study_related_series,
                studies.c.number_of_study_related_instances,
            ).join(patients, studies.c.patient_pk == patients.c.pk)
        ).all()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def patient_ids(runtime: Runtime) -> set[str]:
    with runtime.database.reader.connect() as connection:
        return set(connection.execute(sa.select(schema.patients.c.patient_id)).scalars())


def stored_headers(runtime: Runtime, study: str) -> list[pydicom.Dataset]:
    """The stored files of a study, read back from the blob store."""
    return [
        pydicom.dcmread(io.BytesIO(runtime.archive.read(r)))
        for r in runtime.archive.instances(study)
    ]


def events(runtime: Runtime, action: str) -> list[dict]:
    """The trail's events of one action, oldest first."""
    found, _ = runtime.audit.search(AuditFilter(action=action))
    return sorted((e.as_dict() for e in found), key=lambda e: e["seq"])


def test_update_patient_rewrites_every_file_and_the_index_once(any_store: Runtime) -> None:
    runtime = any_store
    first, _ = store_study(runtime, "P1", "Ivanov^Ivan", series=2, per=2, charset="ISO_IR 100")
    second, _ = store_study(runtime, "P1", "Ivanov^Ivan")
    old_keys = {r.blob_key for s in (first, second) for r in runtime.archive.instances(s)}
    sops = {r.sop_instance_uid for r in runtime.archive.instances(first)}

    result = runtime.management.update_patient(
        "P1",
        {"PatientName": "Иванов^Иван", "PatientBirthDate": "19700102", "PatientSex": "M"},
        actor=ADMIN,
    )

    assert result.instances == 5
    for study in (first, second):
        for header in stored_headers(runtime, study):
            assert str(header.PatientName) == "Иванов^Иван"
            assert header.PatientBirthDate == "19700102" and header.PatientSex == "M"
            assert header.PatientID == "P1"
    # the same SOP Instance UIDs; Latin-1 could not hold Cyrillic: the file became UTF-8
    assert {r.sop_instance_uid for r in runtime.archive.instances(first)} == sops
    assert stored_headers(runtime, first)[0].SpecificCharacterSet == "ISO_IR 192"
    # the old blobs are gone once the index switched; the metadata names the new patient
    assert not any(runtime.blobs.exists(key) for key in old_keys)
    assert "Иванов^Иван" in runtime.archive.instances(first)[0].metadata_json
    with runtime.database.reader.connect() as connection:
        name = connection.execute(sa.select(schema.patients.c.patient_name)).scalar_one()
    assert name == "Иванов^Иван"
    (event,) = events(runtime, "patient:update")
    assert event["outcome"] == "success" and event["patient_id"] == "P1"
    assert event["details"]["changes"]["PatientSex"] == "M"
    assert sorted(event["details"]["studies"]) == sorted([first, second])


def test_a_new_patient_id_moves_the_patient_and_keeps_one_patient_per_study(
    runtime: Runtime,
) -> None:
    study, (series,) = store_study(runtime, "OLD-1", "Petrov^Petr")
    store_study(runtime, "TAKEN", "Sidorov^Sid")
    with pytest.raises(Conflict, match="merge"):
        runtime.management.update_patient("OLD-1", {"PatientID": "TAKEN"}, actor=ADMIN)
    runtime.management.update_patient("OLD-1", {"PatientID": "NEW-1"}, actor=ADMIN)

    assert study_rows(runtime)[study][0] == "NEW-1"
    assert patient_ids(runtime) == {"NEW-1", "TAKEN"}
    # the admission rule follows the new identity: the old ID is refused, the new one joins
    late = make_instance(
        study_uid=study, series_uid=series, PatientID="OLD-1", PatientName="Petrov^Petr"
    )
    assert runtime.archive.store(late).reason == "patient-mismatch"
    joining = make_instance(
        study_uid=study, series_uid=series, PatientID="NEW-1", PatientName="Petrov^Petr"
    )
    assert runtime.archive.store(joining).status == "stored"
    refused = events(runtime, "patient:update")
    assert [e["outcome"] for e in refused] == ["failure", "success"]


def test_invalid_values_are_refused_naming_the_attribute(runtime: Runtime) -> None:
    study, _ = store_study(runtime, "P1", "A^B")
    with pytest.raises(InvalidChange, match="StudyDate"):
        runtime.management.update_study(study, {"StudyDate": "2024-13-45"}, actor=ADMIN)
    with pytest.raises(InvalidChange, match="SOPInstanceUID"):
        runtime.management.update_study(study, {"SOPInstanceUID": "1.2"}, actor=ADMIN)
    with pytest.raises(NotFound):
        runtime.management.update_study("1.2.3.999", {"StudyDescription": "x"}, actor=ADMIN)
    assert len(events(runtime, "study:update")) == 3


def test_update_study_then_merge_studies_moves_the_series(runtime: Runtime) -> None:
    target, _ = store_study(runtime, "P1", "A^B", series=2)
    source, source_series = store_study(runtime, "P1", "A^B", series=1, per=3)
    runtime.management.update_study(
        target,
        {
            "StudyDescription": "Chest CT",
            "AccessionNumber": "ACC-9",
            "ReferringPhysicianName": "House^Gregory",
        },
        actor=ADMIN,
    )
    result = runtime.management.merge_studies(source, target, actor=ADMIN)

    assert result.instances == 3 and result.series == source_series
    rows = study_rows(runtime)
    assert source not in rows and rows[target] == ("P1", 3, 5)
    with pytest.raises(NotFound):
        runtime.archive.instances(source)
    for header in stored_headers(runtime, target):
        assert header.StudyInstanceUID == target
        assert header.StudyDescription == "Chest CT" and header.AccessionNumber == "ACC-9"
    (event,) = events(runtime, "study:merge")
    assert event["study_uid"] == source and event["patient_id"] == "P1"
    assert event["details"]["studies"] == [source, target]


def test_merge_of_studies_of_two_patients_or_with_a_report_is_refused(runtime: Runtime) -> None:
    first, _ = store_study(runtime, "P1", "A^B")
    other, _ = store_study(runtime, "P2", "C^D")
    with pytest.raises(Conflict, match="different patients"):
        runtime.management.merge_studies(first, other, actor=ADMIN)
    reported, _ = store_study(runtime, "P1", "A^B")
    runtime.reports.save_draft(
        reported,
        Draft("en", None, {"findings": "x"}, ()),
        Actor("doc", "doctor"),
        expected_revision=None,
    )
    with pytest.raises(Conflict, match="report"):
        runtime.management.merge_studies(reported, first, actor=ADMIN)
    # the other direction is fine: the report stays with its study
    runtime.management.merge_studies(first, reported, actor=ADMIN)
    assert study_rows(runtime)[reported][2] == 2
    assert [e["outcome"] for e in events(runtime, "study:merge")] == [
        "failure",
        "failure",
        "success",
    ]


def test_split_series_into_a_new_study_of_another_patient(runtime: Runtime) -> None:
    study, (_, wrong) = store_study(runtime, "P1", "A^B", series=2, per=2, StudyDescription="Head")
    store_study(runtime, "P2", "Other^Patient", PatientBirthDate="19800101")
    result = runtime.management.split_series(study, [wrong], target_patient_id="P2", actor=ADMIN)
    new_study = result.new_study_uid
    assert new_study is not None and result.instances == 2
    rows = study_rows(runtime)
    assert rows[study] == ("P1", 1, 2) and rows[new_study] == ("P2", 1, 2)
    for header in stored_headers(runtime, new_study):
        assert header.SeriesInstanceUID == wrong and header.StudyInstanceUID == new_study
        assert header.PatientID == "P2" and str(header.PatientName) == "Other^Patient"
        assert header.StudyDescription == "Head"
    (event,) = events(runtime, "series:split")
    assert event["details"]["patients_before"] == ["P1"]
    assert event["details"]["patients_after"] == ["P2"]
    assert event["details"]["new_study_uid"] == new_study


def test_merge_patients_then_delete_a_series(any_store: Runtime) -> None:
    runtime = any_store
    one, _ = store_study(runtime, "P1", "Smith^Jo")
    two, _ = store_study(runtime, "P1", "Smith^Jo")
    target, (_, other_series) = store_study(
        runtime, "P2", "Smith^Joanna", series=2, PatientBirthDate="19900101"
    )
    result = runtime.management.merge_patients("P1", "P2", actor=ADMIN)
    assert result.instances == 2 and sorted(result.studies) == sorted([one, two])
    assert patient_ids(runtime) == {"P2"}
    for study in (one, two):
        (header,) = stored_headers(runtime, study)
        assert header.PatientID == "P2" and str(header.PatientName) == "Smith^Joanna"
        assert header.PatientBirthDate == "19900101"
    (event,) = events(runtime, "patient:merge")
    assert event["patient_id"] == "P2"
    assert event["details"]["patients_before"] == ["P1", "P2"]

    deleted = runtime.management.delete_series(target, other_series, actor=ADMIN)
    assert deleted.instances == 1 and study_rows(runtime)[target][1:] == (1, 1)
    (event,) = events(runtime, "series:delete")
    assert event["series_uid"] == other_series and event["patient_id"] == "P2"


def test_merge_into_an_absent_patient_renames_only_when_asked(runtime: Runtime) -> None:
    study, _ = store_study(runtime, "OLD-9", "Merge^Me")
    with pytest.raises(NotFound):
        runtime.management.merge_patients("OLD-9", "HIS-9", actor=ADMIN)
    result = runtime.management.merge_patients("OLD-9", "HIS-9", actor=ADMIN, rename_if_absent=True)
    assert result.renamed and study_rows(runtime)[study][0] == "HIS-9"
    (header,) = stored_headers(runtime, study)
    assert header.PatientID == "HIS-9" and str(header.PatientName) == "Merge^Me"
    assert [e["details"]["renamed"] for e in events(runtime, "patient:merge")] == [False, True]


def test_an_instance_arriving_meanwhile_makes_the_operation_a_conflict(
    runtime: Runtime,
) -> None:
    study, (series,) = store_study(runtime, "P1", "A^B", per=2)
    records = runtime.archive.instances(study)
    runtime.archive.store(
        make_instance(study_uid=study, series_uid=series, PatientID="P1", PatientName="A^B")
    )
    before = set(runtime.blobs.blob_keys())
    with pytest.raises(Conflict):
        runtime.archive.replace_instances(
            (r, rewrite(runtime.archive.read(r), {"PatientName": "C^D"})) for r in records
        )
    assert study_rows(runtime)[study] == ("P1", 1, 3)
    assert set(runtime.blobs.blob_keys()) == before  # the refused rewrite left no blob


def test_management_is_wired_to_the_report_guard(runtime: Runtime) -> None:
    assert isinstance(runtime.management, StudyManagement)
    assert runtime.reports.merge_refusal("1.2.3") is None


SYNTAX_SAMPLES = [
    *(
        Path(get_testdata_file(name))  # type: ignore[arg-type]
        for name in (
            "CT_small.dcm",
            "MR_small_bigendian.dcm",
            "MR_small_implicit.dcm",
            "JPEG2000.dcm",
            "MR_small_RLE.dcm",
            "image_dfl.dcm",
        )
    ),
    SAMPLES / "generated" / "cyrillic_iso2022_ir_144.dcm",
    SAMPLES / "generated" / "cyrillic_iso_ir_144.dcm",
]


@pytest.mark.parametrize("sample", SYNTAX_SAMPLES, ids=lambda p: p.name)
def test_a_rewrite_keeps_the_transfer_syntax_pixel_data_and_other_text(
    tmp_path: Path, sample: Path
) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", fsync=False)
    with Runtime(settings) as runtime:
        original = pydicom.dcmread(sample)
        outcome = runtime.archive.store(sample.read_bytes())
        assert outcome.status == "stored", outcome
        study = str(original.StudyInstanceUID)
        patient = runtime.archive.patient_of(study) or ""
        runtime.management.update_patient(
            patient, {"PatientName": "Сидоров^Пётр"}, actor=ADMIN, issuer=None
        )
        runtime.management.update_study(study, {"StudyDescription": "Ново"}, actor=ADMIN)
        (record,) = runtime.archive.instances(study)
        stored = pydicom.dcmread(io.BytesIO(runtime.archive.read(record)))
        assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert stored.SOPInstanceUID == original.SOPInstanceUID
        assert str(stored.PatientName) == "Сидоров^Пётр" and stored.StudyDescription == "Ново"
        if "PixelData" in original:
            assert stored.PixelData == original.PixelData
        # text the change did not touch reads as before, whatever the character set became
        for keyword in ("InstitutionName", "PatientID", "Modality"):
            assert stored.get(keyword) == original.get(keyword), keyword
