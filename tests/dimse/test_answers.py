"""C-FIND answers: encoded directly, byte for byte what pydicom makes of the same answer data
set, in both little endian VR forms; streamed from the query engine, so a C-CANCEL stops
the query itself (the audit trail records how many matches were produced)."""

from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from klinika.audit import AuditFilter
from klinika.dimse.identifiers import (
    AnswerEncoder,
    answer_bytes,
    answer_dataset,
    identifier_query,
)
from klinika.index.query import STREAM_CHUNK
from tests.dimse.conftest import LocalDimse, associate
from tests.dimse.test_wire import cancel_after_first_match
from tests.factories import make_instance

FIND = StudyRootQueryRetrieveInformationModelFind
STUDY_KEYS = (
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "ModalitiesInStudy",
    "AccessionNumber",
    "StudyDescription",
    "ReferringPhysicianName",
    "NumberOfStudyRelatedInstances",
)
IMAGE_KEYS = ("StudyInstanceUID", "SOPInstanceUID", "InstanceNumber", "Rows", "ImageType")


def identifier(level: str, keys: tuple[str, ...], **match: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in keys:
        setattr(ds, keyword, "")
    for keyword, value in match.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture
def varied(local: LocalDimse) -> str:
    """A study with a Cyrillic name, two modalities and empty attributes."""
    study = generate_uid()
    local.archive.store_many(
        [
            make_instance(
                study_uid=study,
                PatientName="Иванов^Пётр=Ivanov^Petr",
                PatientID="RU-1",
                AccessionNumber="",
                StudyDescription="КТ грудной клетки",
                ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
            ),
            make_instance(
                study_uid=study,
                PatientName="Иванов^Пётр=Ivanov^Petr",  # one patient per study
                PatientID="RU-1",
                Modality="MR",
                ImageType=["DERIVED"],
            ),
            make_instance(PatientName="Plain^Ascii", PatientID="A-1", charset="ISO_IR 100"),
        ]
    )
    return study


@pytest.mark.parametrize("implicit_vr", [True, False])
@pytest.mark.parametrize(("level", "keys"), [("STUDY", STUDY_KEYS), ("IMAGE", IMAGE_KEYS)])
def test_encoded_answers_are_pydicoms_encoding(
    local: LocalDimse, varied: str, implicit_vr: bool, level: str, keys: tuple[str, ...]
) -> None:
    query, requested = identifier_query(identifier(level, keys), FIND)
    matches = list(local.archive.search_stream(query))
    assert len(matches) >= 3 if level == "IMAGE" else len(matches) == 2
    for match in matches:
        direct = answer_bytes(match, requested, query.level, "KLINIKA", implicit_vr=implicit_vr)
        expected = encode(
            answer_dataset(match, requested, query.level, "KLINIKA"), implicit_vr, True
        )
        assert direct is not None and direct == expected


@pytest.mark.parametrize("implicit_vr", [True, False])
def test_one_encoder_serves_every_answer_of_a_request(
    local: LocalDimse, varied: str, implicit_vr: bool
) -> None:
    query, requested = identifier_query(identifier("STUDY", STUDY_KEYS), FIND)
    matches = list(local.archive.search_stream(query))
    encoder = AnswerEncoder(requested, query.level, "KLINIKA", implicit_vr=implicit_vr)
    for match in [*matches, *reversed(matches)]:  # Cyrillic and ASCII answers, either order
        expected = encode(
            answer_dataset(match, requested, query.level, "KLINIKA"), implicit_vr, True
        )
        assert encoder(match) == expected


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_cyrillic_answers_arrive_intact_in_either_syntax(
    local: LocalDimse, varied: str, syntax: str
) -> None:
    assoc = associate(local.port, (FIND, [syntax]))
    try:
        answers = [
            found
            for status, found in assoc.send_c_find(
                identifier("STUDY", STUDY_KEYS, StudyInstanceUID=varied), FIND
            )
            if status.Status == 0xFF00
        ]
    finally:
        assoc.release()
    (answer,) = answers
    assert str(answer.PatientName) == "Иванов^Пётр=Ivanov^Petr"
    assert answer.StudyDescription == "КТ грудной клетки"
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert list(answer.ModalitiesInStudy) == ["CT", "MR"]
    assert answer.NumberOfStudyRelatedInstances == 2
    assert answer.AccessionNumber == "" and answer.RetrieveAETitle == "KLINIKA"


def test_a_cancelled_find_stops_the_query_itself(local: LocalDimse) -> None:
    matches = 400
    local.archive.store_many(
        make_instance(PatientName="Stream^Me", PatientID=f"S{n}") for n in range(matches)
    )
    query = identifier("STUDY", ("StudyInstanceUID",), PatientName="Stream*")
    assoc = associate(local.port, FIND)
    try:
        for attempt in range(5):
            statuses = cancel_after_first_match(assoc, query, msg_id=20 + attempt)
            if statuses[-1] == 0xFE00:
                break
        assert statuses[-1] == 0xFE00, "no C-FIND was cancelled in 5 tries"
    finally:
        assoc.release()
    events, _ = local.runtime.audit.search(AuditFilter(action="dicom:read"), limit=10)
    produced = [json.loads(event.details)["matches"] for event in events]
    # the query engine stopped shortly after the C-CANCEL: far from all 400 matches were made
    assert min(produced) < matches // 2, produced


def test_a_find_over_many_studies_answers_all_from_a_batched_stream(local: LocalDimse) -> None:
    studies = 140
    local.archive.store_many(
        make_instance(PatientName="Many^Studies", PatientID=f"M{n}", StationName=f"ST{n}")
        for n in range(studies)
    )
    batches: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "metadata_json" in statement and "min(" in statement.lower():
            batches.append(statement)  # the engine's per-batch lookup of unindexed values

    engine = local.archive.database.reader
    sa.event.listen(engine, "before_cursor_execute", seen)
    assoc = associate(local.port, FIND)
    try:
        query = identifier("STUDY", ("StudyInstanceUID", "StationName"), PatientName="Many^*")
        answers = [
            found for status, found in assoc.send_c_find(query, FIND) if status.Status == 0xFF00
        ]
    finally:
        assoc.release()
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert sorted(str(a.StationName) for a in answers) == sorted(f"ST{n}" for n in range(studies))
    assert len(batches) == math.ceil(studies / STREAM_CHUNK)
