"""C-MOVE and C-GET send what the peer accepts: stored bytes when it accepted the stored
transfer syntax, else a transcoded little-endian instance, else a counted failure.

Peers: DCMTK ``movescu`` to ``storescp`` (plain: uncompressed only; ``+xa +B``: everything,
written bit-preserving), ``getscu`` with its default contexts, pynetdicom as C-GET SCU with
one little-endian syntax only, and Orthanc 1.10 as C-MOVE destination (orthanc_retrieve.py).
Every compressed sample of the repository and of pydicom's test files is retrieved, under
fresh UIDs in one study (pydicom's files share UIDs).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from klinika.dicom.transcode import CannotTranscode, can_decode, data_set_offset, transcode
from tests.conftest import PYDICOM_DATA, SAMPLES, free_port, port_open, wait_until
from tests.dimse.conftest import DCMTK_ENV, LocalDimse, local_dimse

UNCOMPRESSED_LE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
#: Transfer syntaxes DCMTK 3.6.7 does not know (storescp +xa does not accept them).
NOT_DCMTK = {
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.8.1",
}
CALLING = "RETRIEVESCU"


@dataclass
class Sample:
    """A compressed sample under fresh UIDs: its file, what it holds, how it decodes."""

    name: str
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    pixels: np.ndarray | None  # pydicom's decoded array of the original; None: undecodable


def _pixels(path: Path) -> np.ndarray | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path).pixel_array
    except Exception:
        return None


def _candidates() -> list[Path]:
    files = sorted(SAMPLES.rglob("*.dcm")) + sorted(PYDICOM_DATA.glob("*.dcm"))
    return [p for p in files if not p.name.startswith("malformed_")]


def prepare_samples(folder: Path, study_uid: str) -> list[Sample]:
    """Every readable Part-10 sample with compressed (or big-endian/deflated) pixel data,
    rewritten in its own transfer syntax with new UIDs under one patient and study."""
    samples: list[Sample] = []
    for path in _candidates():
        data = path.read_bytes()
        if data[128:132] != b"DICM":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(io.BytesIO(data))
            except Exception:
                continue
        syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        if (
            not syntax
            or syntax in UNCOMPRESSED_LE
            or "PixelData" not in ds
            or "SOPClassUID" not in ds
        ):
            continue
        sop_uid = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
        ds.PatientID, ds.PatientName = "RETRIEVE", "Retrieve^Test"
        target = folder / f"{path.stem}.dcm"
        try:
            ds.save_as(target, enforce_file_format=True)
        except TypeError:  # SC_rgb_jpeg.dcm: an implicit VR data set declared explicit
            continue
        samples.append(
            Sample(path.name, target, str(ds.SOPClassUID), sop_uid, syntax, _pixels(target))
        )
    return samples


@dataclass
class Retrieval:
    klinika: LocalDimse
    study_uid: str
    samples: list[Sample]
    plain_port: int
    plain_dir: Path
    all_port: int
    all_dir: Path

    @property
    def decodable(self) -> list[Sample]:
        return [s for s in self.samples if s.pixels is not None]

    @property
    def undecodable(self) -> list[Sample]:
        return [s for s in self.samples if s.pixels is None]


def _storescp(port: int, folder: Path, title: str, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["storescp", "-aet", title, "-od", str(folder), *options, str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def retrieval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retrieval]:
    root = tmp_path_factory.mktemp("retrieve")
    (root / "samples").mkdir()
    study_uid = generate_uid()
    samples = prepare_samples(root / "samples", study_uid)
    plain_port, all_port = free_port(), free_port()
    plain_dir, all_dir = root / "plain", root / "all"
    plain_dir.mkdir()
    all_dir.mkdir()
    receivers = [
        _storescp(plain_port, plain_dir, "PLAINSCP"),
        _storescp(all_port, all_dir, "ALLSCP", "+xa", "+B"),
    ]
    modalities = (
        f"{CALLING}@127.0.0.1:104 PLAINSCP@127.0.0.1:{plain_port} ALLSCP@127.0.0.1:{all_port}"
    )
    try:
        with local_dimse(root / "data", modalities=modalities) as klinika:
            outcomes = klinika.archive.store_many([s.path.read_bytes() for s in samples])
            rejected = [
                (s.name, o.reason) for s, o in zip(samples, outcomes, strict=True) if not o.accepted
            ]
            assert not rejected, rejected
            yield Retrieval(klinika, study_uid, samples, plain_port, plain_dir, all_port, all_dir)
    finally:
        for receiver in receivers:
            receiver.terminate()
            receiver.wait(timeout=10)


def dcmtk(
    retrieval: Retrieval, tool: str, *args: str, instances: list[Sample] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run movescu/getscu on the whole study, or on ``instances`` at IMAGE level."""
    command = [tool, "-v", "-aet", CALLING, "-aec", "KLINIKA", "-S", *args]
    command += ["-k", f"StudyInstanceUID={retrieval.study_uid}"]
    if instances is None:
        command += ["-k", "QueryRetrieveLevel=STUDY"]
    else:
        uids = "\\".join(s.sop_instance_uid for s in instances)
        command += ["-k", "QueryRetrieveLevel=IMAGE", "-k", f"SOPInstanceUID={uids}"]
    command += ["127.0.0.1", str(retrieval.klinika.port)]
    return subprocess.run(command, capture_output=True, text=True, env=DCMTK_ENV, timeout=120)


def received(folder: Path, expected: int, timeout: float = 20) -> dict[str, Path]:
    """SOP Instance UID -> file, once ``expected`` files are there (or the time is up)."""
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)
    found = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found[str(ds.SOPInstanceUID)] = path
    return found


def dciodvfy_errors(path: Path) -> set[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return {re.sub(r"\s+", " ", line.strip()) for line in lines if line.startswith("Error")}


def baseline_errors(sample: Sample, folder: Path) -> set[str]:
    """dciodvfy's errors of the original; of its inflated copy for a deflated one (dciodvfy
    cannot read deflated data sets), made with zlib, not with the code under test."""
    if sample.transfer_syntax != DeflatedExplicitVRLittleEndian:
        return dciodvfy_errors(sample.path)
    import zlib

    data = sample.path.read_bytes()
    offset = data_set_offset(data)
    ds = pydicom.dcmread(sample.path, stop_before_pixels=True)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta)
    inflated = zlib.decompress(data[offset:], -zlib.MAX_WBITS)
    copy = folder / f"inflated-{sample.sop_instance_uid}.dcm"
    copy.write_bytes(b"\x00" * 128 + b"DICM" + meta.getvalue() + inflated)
    return dciodvfy_errors(copy)


def check_transcoded(sample: Sample, path: Path, scratch: Path) -> list[str]:
    """What is wrong with a received instance: pixels, transfer syntax, new dciodvfy errors."""
    problems = []
    ds = pydicom.dcmread(path)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if syntax == sample.transfer_syntax:
        return [f"{sample.name}: arrived as stored ({syntax}) at a peer that does not accept it"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not np.array_equal(ds.pixel_array, sample.pixels):
            problems.append(f"{sample.name}: pixels differ after transcoding to {syntax}")
    new = dciodvfy_errors(path) - baseline_errors(sample, scratch)
    if new:
        problems.append(f"{sample.name} ({syntax}): new dciodvfy errors {sorted(new)}")
    return problems


def final_status(output: str, service: str) -> str:
    """The final C-MOVE/C-GET status DCMTK printed (``-v``), e.g. ``Success`` or
    ``Warning: SubOperationsCompleteOneOrMoreFailures``; the association must have been
    released cleanly."""
    match = re.search(rf"Received Final {service} Response \(([^)]*)\)", output)
    assert match, output
    assert "Releasing Association" in output and "Release Failed" not in output, output
    return match.group(1)


def test_movescu_to_a_plain_storescp_gets_every_decodable_instance_transcoded(
    retrieval: Retrieval, tmp_path: Path
) -> None:
    result = dcmtk(retrieval, "movescu", "-aem", "PLAINSCP")
    # storescp without +xa accepts uncompressed syntaxes: big endian included.
    arriving = [s for s in retrieval.decodable]
    files = received(retrieval.plain_dir, len(arriving))
    problems: list[str] = []
    for sample in arriving:
        if sample.sop_instance_uid not in files:
            problems.append(f"{sample.name} ({sample.transfer_syntax}) did not arrive")
        elif sample.transfer_syntax != ExplicitVRBigEndian:
            problems += check_transcoded(sample, files[sample.sop_instance_uid], tmp_path)
    assert not problems, problems
    undecodable = {s.sop_instance_uid for s in retrieval.undecodable}
    assert not undecodable & set(files)
    outcome = final_status(result.stdout + result.stderr, "Move")
    assert outcome.startswith("Warning") if undecodable else outcome == "Success"


def test_movescu_to_a_storescp_that_accepts_everything_gets_the_stored_bytes(
    retrieval: Retrieval, tmp_path: Path
) -> None:
    """storescp ``+xa +B`` writes what it received bit for bit. Syntaxes DCMTK 3.6.7 does not
    know (HTJ2K, Deflated Image Frame) are transcoded when they can be decoded; big endian is
    offered first but storescp prefers little endian (its choice, PS3.8 9.3.3.2)."""
    result = dcmtk(retrieval, "movescu", "-aem", "ALLSCP")
    expected = [
        s for s in retrieval.samples if s.pixels is not None or s.transfer_syntax not in NOT_DCMTK
    ]
    files = received(retrieval.all_dir, len(expected))
    assert set(files) == {s.sop_instance_uid for s in expected}, result.stderr
    outcome = final_status(result.stdout + result.stderr, "Move")
    assert outcome == "Success" if len(expected) == len(retrieval.samples) else "Warning"
    problems: list[str] = []
    for sample in expected:
        path = files[sample.sop_instance_uid]
        if sample.transfer_syntax in NOT_DCMTK | {ExplicitVRBigEndian}:
            problems += check_transcoded(sample, path, tmp_path)
            continue
        sent = path.read_bytes()
        stored = retrieval.klinika.stored(sample.path.read_bytes())
        if sent[data_set_offset(sent) :] != stored[data_set_offset(stored) :]:
            problems.append(f"{sample.name}: the data set was not sent as stored")
    assert not problems, problems


def test_getscu_with_default_contexts_gets_every_decodable_instance(
    retrieval: Retrieval, tmp_path: Path
) -> None:
    """The decodable instances only: DCMTK 3.6.7's getscu does not read the identifier (the
    Failed SOP Instance UID List, PS3.4 C.4.3.1.3.1) of a final Warning or Failure response
    and then fails its release on that P-DATA; failures are checked with pynetdicom below."""
    out = tmp_path / "got"
    out.mkdir()
    result = dcmtk(retrieval, "getscu", "-od", str(out), instances=retrieval.decodable)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Release Failed" not in output and "P-Data PDU arrived" not in output, output
    files = received(out, len(retrieval.decodable), timeout=1)
    problems: list[str] = []
    for sample in retrieval.decodable:
        path = files.get(sample.sop_instance_uid)
        if path is None:
            problems.append(f"{sample.name} ({sample.transfer_syntax}) did not arrive")
        elif sample.transfer_syntax != ExplicitVRBigEndian:  # getscu accepts big endian
            problems += check_transcoded(sample, path, tmp_path)
    assert not problems, problems
    assert "Number of Completed Suboperations : " + str(len(retrieval.decodable)) in output
    assert "Number of Failed Suboperations    : 0" in output


def get_study(
    retrieval: Retrieval, syntax: str, timeout: int
) -> tuple[Dataset, Dataset | None, dict[str, Dataset]]:
    """A pynetdicom C-GET of the study by a peer that accepts ``syntax`` alone: the final
    response, its identifier (failed SOP Instance UIDs) and what arrived, by SOP Instance UID."""
    sop_classes = sorted({s.sop_class_uid for s in retrieval.samples})
    ae = AE(ae_title=CALLING)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class, [syntax])
    arrived: dict[str, Dataset] = {}

    def store(event: evt.Event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        arrived[str(dataset.SOPInstanceUID)] = dataset
        return 0x0000

    assoc = ae.associate(
        "127.0.0.1",
        retrieval.klinika.port,
        ae_title="KLINIKA",
        ext_neg=[build_role(sop_class, scp_role=True) for sop_class in sop_classes],
        evt_handlers=[(evt.EVT_C_STORE, store)],
    )
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = retrieval.study_uid
    responses = list(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    assert assoc.is_released
    final, failed = responses[-1]
    return final, failed, arrived


@pytest.mark.parametrize("syntax", UNCOMPRESSED_LE, ids=["explicit", "implicit"])
def test_pynetdicom_get_with_one_little_endian_syntax_gets_all_it_can_decode(
    retrieval: Retrieval, syntax: str
) -> None:
    """Big endian included: a peer that takes little endian only gets it converted."""
    final, failed_list, arrived = get_study(retrieval, syntax, timeout=30)
    undecodable = {s.sop_instance_uid for s in retrieval.undecodable}
    assert final.Status == (0xB000 if undecodable else 0x0000)
    assert final.NumberOfCompletedSuboperations == len(retrieval.decodable)
    assert final.NumberOfFailedSuboperations == len(undecodable)
    assert final.NumberOfWarningSuboperations == 0
    if undecodable:
        assert failed_list is not None
        listed = failed_list.FailedSOPInstanceUIDList
        assert set([listed] if isinstance(listed, str) else listed) == undecodable
    assert set(arrived) == {s.sop_instance_uid for s in retrieval.decodable}
    for sample in retrieval.decodable:
        dataset = arrived[sample.sop_instance_uid]
        assert dataset.file_meta.TransferSyntaxUID == syntax, sample.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.array_equal(dataset.pixel_array, sample.pixels), sample.name


def test_an_instance_the_peer_cannot_take_is_a_failed_sub_operation(
    retrieval: Retrieval,
) -> None:
    """Only undecodable samples asked for, to a peer without their syntaxes: every one fails,
    the final status is 0xA702 and the association is released cleanly."""
    assert retrieval.undecodable, "the samples have undecodable files (see samples README)"
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    sop_classes = sorted({s.sop_class_uid for s in retrieval.undecodable})
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class, list(UNCOMPRESSED_LE))
    assoc = ae.associate(
        "127.0.0.1",
        retrieval.klinika.port,
        ae_title="KLINIKA",
        ext_neg=[build_role(sop_class, scp_role=True) for sop_class in sop_classes],
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)],
    )
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = retrieval.study_uid
    identifier.SOPInstanceUID = [s.sop_instance_uid for s in retrieval.undecodable]
    responses = list(assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    assert assoc.is_released
    final, failed_list = responses[-1]
    assert final.Status == 0xA702
    assert final.NumberOfFailedSuboperations == len(retrieval.undecodable)
    assert final.NumberOfCompletedSuboperations == 0
    listed = failed_list.FailedSOPInstanceUIDList
    assert set([listed] if isinstance(listed, str) else listed) == {
        s.sop_instance_uid for s in retrieval.undecodable
    }


def test_klinika_send_to_a_plain_storescp_sends_what_it_accepts(
    retrieval: Retrieval, tmp_path: Path
) -> None:
    """``klinika send`` (the CLI) takes the same path: transcoded where needed, failures
    listed with their SOP Instance UIDs."""
    port, folder = free_port(), tmp_path / "sent"
    folder.mkdir()
    receiver = _storescp(port, folder, "SENDSCP")
    try:
        wait_until(lambda: port_open(port), 30, message="storescp did not listen")
        data_dir = retrieval.klinika.runtime.settings.data_dir
        command = [sys.executable, "-m", "klinika", "--data-dir", str(data_dir), "send"]
        result = subprocess.run(
            [*command, retrieval.study_uid, "--to", "SENDSCP"],
            env={**os.environ, "KLINIKA_MODALITIES": f"SENDSCP@127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        files = received(folder, len(retrieval.decodable), timeout=5)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    assert f"sent {len(retrieval.decodable)}, failed {len(retrieval.undecodable)}" in result.stdout
    for sample in retrieval.undecodable:
        assert sample.sop_instance_uid in result.stderr
    assert set(files) == {s.sop_instance_uid for s in retrieval.decodable}
    problems: list[str] = []
    for sample in retrieval.decodable:
        if sample.transfer_syntax != ExplicitVRBigEndian:
            problems += check_transcoded(sample, files[sample.sop_instance_uid], tmp_path)
    assert not problems, problems


ORTHANC_SCRIPT = Path(__file__).with_name("orthanc_retrieve.py")


@pytest.mark.skipif(shutil.which("Orthanc") is None, reason="Orthanc is not installed")
def test_orthanc_as_c_move_destination_receives_every_decodable_instance(tmp_path: Path) -> None:
    isolate = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    result = subprocess.run(
        [*isolate, sys.executable, str(ORTHANC_SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["released"] and report["decodable"] > 20
    assert report["missing"] == [] and report["different"] == [], report
    assert report["counts"] == {
        "completed": report["decodable"],
        "failed": report["undecodable"],
        "warning": 0,
    }


def test_every_syntax_family_is_among_the_samples(retrieval: Retrieval) -> None:
    """The tests above cover each syntax we accept (and can decode)."""
    syntaxes = {s.transfer_syntax for s in retrieval.decodable}
    for family in (
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.70",  # JPEG lossless
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.5",  # RLE
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    ):
        assert family in syntaxes and can_decode(family), family


#: The lossless compressed syntaxes a retrieve may transcode to (never a lossy one).
LOSSLESS_TARGETS = {
    "1.2.840.10008.1.2.4.80": "JPEGLSLossless",
    "1.2.840.10008.1.2.4.90": "JPEG2000LosslessOnly",
    "1.2.840.10008.1.2.5": "RLELossless",
}


def deliverable(samples: list[Sample], syntax: str) -> dict[str, Sample]:
    """The samples a peer that accepts only ``syntax`` can get: those stored so, and those
    the transcoding room can encode in it (the encoders have limits of their own, e.g.
    OpenJPEG on images smaller than its resolution levels, pyjpegls on a 3x3 RGB image). The
    tests check that exactly these arrive, in ``syntax``, with the original pixels."""
    found = {}
    for sample in samples:
        if sample.transfer_syntax != syntax:
            if sample.pixels is None:
                continue
            try:
                transcode(sample.path.read_bytes(), syntax)
            except CannotTranscode:
                continue
        found[sample.sop_instance_uid] = sample
    return found


@pytest.mark.parametrize("syntax", LOSSLESS_TARGETS)
def test_pynetdicom_get_with_one_lossless_compressed_syntax_gets_it_transcoded(
    retrieval: Retrieval, syntax: str
) -> None:
    """A C-GET SCU that accepts only one lossless compressed syntax gets every instance that
    syntax can carry in it, pixels equal; the others are failed sub-operations."""
    final, _, arrived = get_study(retrieval, syntax, timeout=60)
    expected = deliverable(retrieval.samples, syntax)
    assert len(expected) > len(retrieval.decodable) // 2  # most of them
    assert set(arrived) == set(expected)
    assert final.NumberOfCompletedSuboperations == len(expected)
    assert final.NumberOfFailedSuboperations == len(retrieval.samples) - len(expected)
    for sample in retrieval.samples:
        if sample.sop_instance_uid in arrived and sample.pixels is not None:
            dataset = arrived[sample.sop_instance_uid]
            assert dataset.file_meta.TransferSyntaxUID == syntax, sample.name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert np.array_equal(dataset.pixel_array, sample.pixels), sample.name


def only_syntax_config(path: Path, sop_classes: list[str], syntax: str) -> Path:
    """A storescp ``-xf`` configuration whose profile ``Only`` accepts ``syntax`` alone."""
    lines = ["[[TransferSyntaxes]]", "[OnlyOne]", f"TransferSyntax1 = {LOSSLESS_TARGETS[syntax]}"]
    lines += ["[[PresentationContexts]]", "[Only]"]
    lines += [f"PresentationContext{n} = {s}\\OnlyOne" for n, s in enumerate(sop_classes, 1)]
    lines += ["[[Profiles]]", "[Only]", "PresentationContexts = Only"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"])
def test_klinika_send_to_a_storescp_that_accepts_one_lossless_syntax_transcodes_to_it(
    retrieval: Retrieval, syntax: str, tmp_path: Path
) -> None:
    """storescp configured (``-xf``) to accept only JPEG-LS or JPEG 2000 lossless: ``klinika
    send`` (the C-MOVE sender's path) proposes the lossless syntaxes after the uncompressed
    ones, and the instances that syntax can carry arrive in it, pixels equal, no new dciodvfy
    error; the others are listed as failed."""
    sop_classes = sorted({s.sop_class_uid for s in retrieval.samples})
    config = only_syntax_config(tmp_path / "only.cfg", sop_classes, syntax)
    port, folder = free_port(), tmp_path / "only"
    folder.mkdir()
    receiver = _storescp(port, folder, "ONLYSCP", "-xf", str(config), "Only")
    expected = deliverable(retrieval.samples, syntax)
    try:
        data_dir = retrieval.klinika.runtime.settings.data_dir
        command = [sys.executable, "-m", "klinika", "--data-dir", str(data_dir), "send"]
        result = subprocess.run(
            [*command, retrieval.study_uid, "--to", "ONLYSCP"],
            env={**os.environ, "KLINIKA_MODALITIES": f"ONLYSCP@127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        files = received(folder, len(expected), timeout=5)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    failed = len(retrieval.samples) - len(expected)
    assert f"sent {len(expected)}, failed {failed}" in result.stdout, result.stdout + result.stderr
    assert set(files) == set(expected)
    problems: list[str] = []
    for uid, sample in expected.items():
        if sample.transfer_syntax != syntax:
            assert str(pydicom.dcmread(files[uid]).file_meta.TransferSyntaxUID) == syntax
            problems += check_transcoded(sample, files[uid], tmp_path)
    assert not problems, problems
