"""The workflow SCPs with real peers: DCMTK ``findscu -W`` and pynetdicom as Modality Worklist,
MPPS and Storage Commitment SCUs (the N-EVENT-REPORT on the same association and on a new
one to a listener the test starts)."""

from __future__ import annotations

import io
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from klinika.audit import Actor, AuditFilter
from klinika.workflow import StepDetails, StepStatus
from tests.conftest import free_port, port_open, wait_until
from tests.dimse.conftest import DCMTK_ENV, LocalDimse, associate, local_dimse
from tests.factories import make_instance
from tests.workflow.conftest import CYRILLIC_NAME

MWL = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DESK = Actor("desk", "operator")


@pytest.fixture
def report_port() -> int:
    return free_port()


@pytest.fixture
def site(tmp_path: Path, report_port: int) -> Iterator[LocalDimse]:
    """Klinika with two modalities: CT01 may use the workflow services (its N-EVENT-REPORTs
    go to ``report_port``), NOWORK may only echo and query images."""
    modalities = f"CT01@127.0.0.1:{report_port} NOWORK@127.0.0.1:11113/echo,find"
    with local_dimse(tmp_path / "data", modalities=modalities) as server:
        yield server


def schedule(site: LocalDimse, **overrides: str) -> Any:
    values = {
        "patient_id": "PAT-17",
        "patient_name": CYRILLIC_NAME,
        "patient_birth_date": "19800214",
        "patient_sex": "F",
        "modality": "CT",
        "station_ae_title": "CT01",
        "start_date": "20261202",
        "start_time": "093000",
        "performing_physician": "Петров^Иван",
        "requested_procedure_description": "КТ грудной клетки",
        "procedure_code_value": "CTCHEST",
        "procedure_code_meaning": "CT chest",
    }
    values.update(overrides)
    return site.runtime.schedule.create(StepDetails(**values), DESK)


def worklist_query(**sps: str) -> Dataset:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID"):
        setattr(query, keyword, "")
    query.RequestedProcedureCodeSequence = []
    item = Dataset()
    for keyword in (
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepStatus",
    ):
        setattr(item, keyword, sps.pop(keyword, ""))
    query.ScheduledProcedureStepSequence = [item]
    for keyword, value in sps.items():
        setattr(query, keyword, value)
    return query


def find(port: int, query: Dataset, aet: str = "CT01") -> tuple[list[int], list[Dataset]]:
    assoc = associate(port, MWL, aet=aet)
    try:
        statuses, answers = [], []
        for answer_status, identifier in assoc.send_c_find(query, MWL):
            statuses.append(int(answer_status.Status))
            if identifier is not None:
                answers.append(identifier)
        return statuses, answers
    finally:
        assoc.release()


def test_findscu_finds_a_cyrillic_patient_from_a_dump2dcm_query(
    site: LocalDimse, tmp_path: Path
) -> None:
    step = schedule(site)
    schedule(
        site, patient_name="Smith^Anna", patient_id="PAT-18", station_ae_title="MR01", modality="MR"
    )
    dump = tmp_path / "query.dump"
    dump.write_text(
        "(0008,0005) CS [ISO_IR 192]\n"
        "(0008,0050) SH []\n"
        "(0010,0010) PN [Иванова*]\n"
        "(0010,0020) LO []\n"
        "(0020,000d) UI []\n"
        "(0040,0100) SQ (Sequence with undefined length)\n"
        "  (fffe,e000) na (Item with undefined length)\n"
        "    (0008,0060) CS [CT]\n"
        "    (0040,0001) AE [CT01]\n"
        "    (0040,0002) DA [20261201-20261203]\n"
        "    (0040,0003) TM []\n"
        "    (0040,0006) PN []\n"
        "    (0040,0009) SH []\n"
        "  (fffe,e00d) na (ItemDelimitationItem)\n"
        "(fffe,e0dd) na (SequenceDelimitationItem)\n",
        encoding="utf-8",
    )
    query = tmp_path / "query.wl"
    subprocess.run(["dump2dcm", str(dump), str(query)], check=True, capture_output=True)
    out = tmp_path / "answers"
    out.mkdir()
    done = subprocess.run(
        [
            "findscu",
            "-W",
            "-aet",
            "CT01",
            "-aec",
            "KLINIKA",
            "-X",
            "-od",
            str(out),
            "127.0.0.1",
            str(site.port),
            str(query),
        ],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answers = [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]
    assert len(answers) == 1, done.stderr
    (answer,) = answers
    assert str(answer.PatientName) == CYRILLIC_NAME
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert answer.AccessionNumber == step.details.accession_number
    assert answer.StudyInstanceUID == step.study_instance_uid
    (sps,) = answer.ScheduledProcedureStepSequence
    assert (sps.Modality, sps.ScheduledStationAETitle) == ("CT", "CT01")
    assert str(sps.ScheduledPerformingPhysicianName) == "Петров^Иван"
    assert sps.ScheduledProcedureStepID == step.step_id
    assert "ScheduledProcedureStepDescription" not in sps  # not asked for


def test_findscu_keys_on_the_command_line(site: LocalDimse) -> None:
    step = schedule(site)
    done = subprocess.run(
        [
            "findscu",
            "-W",
            "-v",
            "-aet",
            "CT01",
            "-aec",
            "KLINIKA",
            "-k",
            "PatientID=PAT-17",
            "-k",
            "PatientName",
            "-k",
            "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01",
            "-k",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
            "127.0.0.1",
            str(site.port),
        ],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert step.step_id in done.stderr + done.stdout


def test_worklist_sequence_matching_and_date_ranges(site: LocalDimse) -> None:
    ct = schedule(site)
    late = schedule(
        site,
        start_date="20261205",
        start_time="1400",
        patient_id="PAT-19",
        patient_name="Müller^Hans",
        performing_physician="Schmidt^Eva",
    )
    mr = schedule(
        site, modality="MR", station_ae_title="MR01", patient_id="PAT-18", patient_name="Smith^Anna"
    )

    def steps(**keys: str) -> set[str]:
        statuses, answers = find(site.port, worklist_query(**keys))
        assert statuses[-1] == 0x0000 and set(statuses[:-1]) <= {0xFF00}
        return {a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for a in answers}

    assert steps() == {ct.step_id, late.step_id, mr.step_id}
    assert steps(Modality="CT") == {ct.step_id, late.step_id}
    assert steps(ScheduledStationAETitle="MR01") == {mr.step_id}
    assert steps(ScheduledProcedureStepStartDate="20261201-20261203") == {ct.step_id, mr.step_id}
    assert steps(ScheduledProcedureStepStartDate="20261204-") == {late.step_id}
    assert steps(
        ScheduledProcedureStepStartDate="20261202", ScheduledProcedureStepStartTime="0900-1000"
    ) == {ct.step_id, mr.step_id}
    assert steps(ScheduledPerformingPhysicianName="schmidt*") == {late.step_id}
    assert steps(PatientName="иванова^мария*") == {ct.step_id}  # case-insensitive Cyrillic
    assert steps(PatientName="M?ller*") == {late.step_id}
    assert steps(Modality="US") == set()
    # a cancelled step leaves the worklist unless its status is asked for
    site.runtime.schedule.cancel(mr.step_id, DESK)
    assert steps(ScheduledStationAETitle="MR01") == set()
    assert steps(ScheduledProcedureStepStatus="DISCONTINUED") == {mr.step_id}

    statuses, answers = find(site.port, worklist_query(ScheduledProcedureStepStartDate="2026"))
    assert statuses == [0xA900] and answers == []
    events, _ = site.runtime.audit.search(AuditFilter(action="workflow:read", actor="CT01"))
    assert events and all(e.source and e.source.startswith("CT01@") for e in events)


def test_worklist_only_for_peers_allowed_the_service(site: LocalDimse) -> None:
    schedule(site)
    statuses, answers = find(site.port, worklist_query(), aet="NOWORK")
    assert statuses == [0x0124] and answers == []


def mpps_create(uid: str | None, **attributes: Any) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = attributes.pop("PatientName", CYRILLIC_NAME)
    ds.PatientID = "PAT-17"
    ds.Modality = "CT"
    ds.PerformedStationAETitle = "CT01"
    ds.PerformedProcedureStepStartDate = "20261202"
    ds.PerformedProcedureStepStartTime = "093500"
    ds.PerformedProcedureStepID = "PPS1"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def scheduled_attributes(step: Any) -> list[Dataset]:
    item = Dataset()
    item.StudyInstanceUID = step.study_instance_uid
    item.AccessionNumber = step.details.accession_number
    item.ScheduledProcedureStepID = step.step_id
    item.ReferencedStudySequence = []
    return [item]


def test_mpps_in_progress_then_completed_and_refusals(site: LocalDimse) -> None:
    step = schedule(site)
    uid = generate_uid()
    assoc = associate(site.port, MPPS, aet="CT01")
    try:
        created = mpps_create(
            uid,
            PerformedProcedureStepStatus="IN PROGRESS",
            ScheduledStepAttributesSequence=scheduled_attributes(step),
        )
        answer, _ = assoc.send_n_create(created, MPPS, uid)
        assert answer.Status == 0x0000
        current = site.runtime.schedule.get(step.step_id, DESK)
        assert current.status == StepStatus.IN_PROGRESS
        assert current.performed and current.performed.sop_instance_uid == uid

        duplicate, _ = assoc.send_n_create(created, MPPS, uid)
        assert duplicate.Status == 0x0111
        bad = mpps_create(None, PerformedProcedureStepStatus="COMPLETED")
        refused, _ = assoc.send_n_create(bad, MPPS, generate_uid())
        assert refused.Status == 0x0106

        wrong = Dataset()
        wrong.PerformedProcedureStepStatus = "FINISHED"
        invalid, _ = assoc.send_n_set(wrong, MPPS, uid)
        assert invalid.Status == 0x0106
        assert site.runtime.schedule.get(step.step_id, DESK).status == StepStatus.IN_PROGRESS

        unknown, _ = assoc.send_n_set(wrong, MPPS, generate_uid())
        assert unknown.Status == 0x0112

        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        done.PerformedProcedureStepEndDate = "20261202"
        done.PerformedProcedureStepEndTime = "100000"
        completed, _ = assoc.send_n_set(done, MPPS, uid)
        assert completed.Status == 0x0000
        current = site.runtime.schedule.get(step.step_id, DESK)
        assert current.status == StepStatus.COMPLETED
        assert current.performed and current.performed.status == "COMPLETED"

        again = Dataset()
        again.PerformedProcedureStepStatus = "DISCONTINUED"
        late, _ = assoc.send_n_set(again, MPPS, uid)
        assert late.Status == 0x0110 and late.ErrorID == 0xA710
        assert site.runtime.schedule.get(step.step_id, DESK).status == StepStatus.COMPLETED
    finally:
        assoc.release()
    # the study the modality sends is linked to the step once it arrives
    assert site.runtime.schedule.get(step.step_id, DESK).stored_study_uid is None
    stored_instance(site, study_uid=step.study_instance_uid, PatientID="PAT-17")
    linked = site.runtime.schedule.get(step.step_id, DESK)
    assert linked.stored_study_uid == step.study_instance_uid
    events, _ = site.runtime.audit.search(AuditFilter(action="workflow:perform"))
    assert {e.outcome for e in events} == {"success", "failure"}
    assert any(e.patient_id == "PAT-17" and e.sop_instance_uid == uid for e in events)


def test_mpps_n_create_without_an_instance_uid_gets_one(site: LocalDimse) -> None:
    assoc = associate(site.port, MPPS, aet="CT01")
    try:
        created = mpps_create(None, PerformedProcedureStepStatus="IN PROGRESS")
        answer, _ = assoc.send_n_create(created, MPPS, None)
        assert answer.Status == 0x0000
        missing = mpps_create(None)
        refused, _ = assoc.send_n_create(missing, MPPS, generate_uid())
        assert refused.Status == 0x0120
    finally:
        assoc.release()


def stored_instance(site: LocalDimse, **attributes: Any) -> Dataset:
    """One CT instance stored through the one ingest path."""
    data = make_instance(**attributes)
    assert site.archive.store(data).accepted
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def commitment_request(ds: Dataset, unknown: str) -> Dataset:
    request = Dataset()
    request.TransactionUID = generate_uid()
    items = []
    for sop_class, uid in (
        (ds.SOPClassUID, ds.SOPInstanceUID),
        (ds.SOPClassUID, unknown),
        ("1.2.840.10008.5.1.4.1.1.4", ds.SOPInstanceUID),  # held, but not as MR
    ):
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = uid
        items.append(item)
    request.ReferencedSOPSequence = items
    return request


def report_audited(site: LocalDimse, delivery: str) -> None:
    """Wait for the audit event of the N-EVENT-REPORT (written after the peer answered it)."""

    def recorded() -> bool:
        events, _ = site.runtime.audit.search(
            AuditFilter(action="workflow:perform", actor="KLINIKA", outcome="success")
        )
        return any(e.as_dict()["details"].get("delivery") == delivery for e in events)

    wait_until(recorded, 60, message=f"no audit event for the report on the {delivery}")


def check_report(report: Dataset, request: Dataset, ds: Dataset, unknown: str) -> None:
    assert report.TransactionUID == request.TransactionUID
    assert [i.ReferencedSOPInstanceUID for i in report.ReferencedSOPSequence] == [ds.SOPInstanceUID]
    failed = {(i.ReferencedSOPInstanceUID, i.FailureReason) for i in report.FailedSOPSequence}
    assert failed == {(unknown, 0x0112), (ds.SOPInstanceUID, 0x0119)}


def test_storage_commitment_reported_on_the_same_association(site: LocalDimse) -> None:
    ds = stored_instance(site)
    unknown = generate_uid()
    request = commitment_request(ds, unknown)
    reports: list[tuple[int, Dataset]] = []

    def on_report(event: evt.Event) -> tuple[int, None]:
        reports.append((event.event_type, event.event_information))
        return 0x0000, None

    assoc = associate(
        site.port, COMMITMENT, aet="CT01", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    try:
        answer, _ = assoc.send_n_action(request, 1, COMMITMENT, COMMITMENT_INSTANCE)
        assert answer.Status == 0x0000
        wait_until(lambda: reports, 60, message="no N-EVENT-REPORT on the association")
        report_audited(site, "same association")
    finally:
        assoc.release()
    ((event_type, report),) = reports
    assert event_type == 2  # some failed
    check_report(report, request, ds, unknown)


def test_storage_commitment_reported_on_a_new_association(
    site: LocalDimse, report_port: int
) -> None:
    ds = stored_instance(site)
    unknown = generate_uid()
    request = commitment_request(ds, unknown)
    reports: list[tuple[int, Dataset, str]] = []
    got = threading.Event()

    def on_report(event: evt.Event) -> tuple[int, None]:
        reports.append((event.event_type, event.event_information, event.assoc.requestor.ae_title))
        got.set()
        return 0x0000, None

    listener_ae = AE(ae_title="CT01")
    listener_ae.add_supported_context(COMMITMENT, scu_role=False, scp_role=True)
    listener = listener_ae.start_server(
        ("127.0.0.1", report_port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    try:
        wait_until(lambda: port_open(report_port), 30, message="the listener did not start")
        assoc = associate(site.port, COMMITMENT, aet="CT01")
        answer, _ = assoc.send_n_action(request, 1, COMMITMENT, COMMITMENT_INSTANCE)
        assoc.release()  # gone before the report: it must come on a new association
        assert answer.Status == 0x0000
        wait_until(got.is_set, 60, message="no N-EVENT-REPORT on a new association")
        report_audited(site, "new association")
    finally:
        listener.shutdown()
    ((event_type, report, caller),) = reports
    assert event_type == 2 and caller.strip() == "KLINIKA"
    check_report(report, request, ds, unknown)


def test_storage_commitment_of_everything_stored_is_event_type_1(site: LocalDimse) -> None:
    ds = stored_instance(site)
    request = Dataset()
    request.TransactionUID = generate_uid()
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    request.ReferencedSOPSequence = [item]
    reports: list[tuple[int, Dataset]] = []

    def on_report(event: evt.Event) -> tuple[int, None]:
        reports.append((event.event_type, event.event_information))
        return 0x0000, None

    assoc = associate(
        site.port, COMMITMENT, aet="CT01", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
    )
    try:
        answer, _ = assoc.send_n_action(request, 1, COMMITMENT, COMMITMENT_INSTANCE)
        assert answer.Status == 0x0000
        wait_until(lambda: reports, 60, message="no N-EVENT-REPORT")
        report_audited(site, "same association")
    finally:
        assoc.release()
    ((event_type, report),) = reports
    assert event_type == 1 and "FailedSOPSequence" not in report


def test_bad_commitment_requests_and_peers_without_the_services(site: LocalDimse) -> None:
    ds = stored_instance(site)
    assoc = associate(site.port, COMMITMENT, MPPS, aet="CT01")
    try:
        empty = Dataset()
        empty.TransactionUID = generate_uid()
        answer, _ = assoc.send_n_action(empty, 1, COMMITMENT, COMMITMENT_INSTANCE)
        assert answer.Status == 0x0115  # nothing to commit
        request = commitment_request(ds, generate_uid())
        answer, _ = assoc.send_n_action(request, 2, COMMITMENT, COMMITMENT_INSTANCE)
        assert answer.Status == 0x0123  # no such action type
    finally:
        assoc.release()
    outsider = associate(site.port, COMMITMENT, MPPS, aet="NOWORK")
    try:
        answer, _ = outsider.send_n_action(request, 1, COMMITMENT, COMMITMENT_INSTANCE)
        assert answer.Status == 0x0124
        created = mpps_create(None, PerformedProcedureStepStatus="IN PROGRESS")
        refused, _ = outsider.send_n_create(created, MPPS, generate_uid())
        assert refused.Status == 0x0124
    finally:
        outsider.release()
