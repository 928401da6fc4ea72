"""Known-modality rules: who may associate, which services each known AE may use, and how
the list of remote AEs is configured."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from klinika.audit import AuditFilter
from klinika.config import RemoteAE, load_settings
from klinika.errors import ConfigError
from tests.dimse.conftest import DCMTK_ENV, LocalDimse, associate, local_dimse
from tests.factories import make_instance


def echoscu(port: int, aet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["echoscu", "-aet", aet, "-aec", "KLINIKA", "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=60,
    )


def test_by_default_any_calling_ae_from_this_machine_is_accepted(local: LocalDimse) -> None:
    assert echoscu(local.port, "ANY_TITLE").returncode == 0


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[LocalDimse]:
    modalities = (
        RemoteAE.parse("KNOWN@127.0.0.1:11112"),
        RemoteAE.parse("FARAWAY@10.9.9.9:104"),  # a known title, but only from that address
        RemoteAE.parse("ECHOONLY@127.0.0.1:104/echo"),
    )
    with local_dimse(tmp_path / "data", dimse_strict=True, modalities=modalities) as server:
        yield server


def test_strict_mode_rejects_unknown_titles_and_known_titles_from_elsewhere(
    strict: LocalDimse, tmp_path: Path
) -> None:
    assert echoscu(strict.port, "KNOWN").returncode == 0
    for title in ("STRANGER", "FARAWAY"):
        refused = echoscu(strict.port, title)
        assert refused.returncode != 0
        assert "Association Rejected" in refused.stderr, refused.stderr
    instance = tmp_path / "ct.dcm"
    instance.write_bytes(make_instance(PatientID="FROM-STRANGER"))
    sent = subprocess.run(
        ["storescu", "-aet", "STRANGER", "-aec", "KLINIKA", "127.0.0.1", str(strict.port),
         str(instance)],
        capture_output=True, text=True, env=DCMTK_ENV, timeout=60,
    )  # fmt: skip
    assert "Association Rejected" in sent.stderr, sent.stderr
    sop = pydicom.dcmread(instance, stop_before_pixels=True).SOPInstanceUID
    assert not strict.holds(str(sop))
    events, total = strict.runtime.audit.search(
        AuditFilter(action="dicom:associate", outcome="denied")
    )
    assert total == 3
    assert {e.as_dict()["source"] for e in events} == {"STRANGER@127.0.0.1", "FARAWAY@127.0.0.1"}


def test_a_known_ae_may_use_only_its_configured_services(strict: LocalDimse) -> None:
    assert echoscu(strict.port, "ECHOONLY").returncode == 0
    stored = strict.archive.store(make_instance(PatientID="KEPT"))
    get, move = (
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )
    assoc = associate(strict.port, CTImageStorage, get, move, aet="ECHOONLY")
    try:
        instance = pydicom.dcmread(io.BytesIO(make_instance(PatientID="REFUSED")))
        answer = assoc.send_c_store(instance)
        assert answer.Status == 0x0124 and answer.ErrorComment
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = stored.study_uid
        answers = [status for status, _ in assoc.send_c_get(identifier, get)]
        assert answers[-1].Status == 0x0124
        # KNOWN is a destination, but the move is refused before it is contacted
        answers = [status for status, _ in assoc.send_c_move(identifier, "KNOWN", move)]
        assert answers[-1].Status == 0xC513
    finally:
        assoc.release()
    assert not strict.holds(str(instance.SOPInstanceUID))


def test_modalities_are_read_from_toml_tables(tmp_path: Path) -> None:
    tables = tmp_path / "tables.toml"
    tables.write_text(
        "dimse_strict = true\n"
        "[[modalities]]\n"
        'title = "ORTHANC"\nhost = "10.0.0.9"\nport = 4242\n'
        "[[modalities]]\n"
        'title = "US1"\nhost = "10.0.0.0/24"\nport = 104\nservices = ["echo", "store"]\n',
        encoding="utf-8",
    )
    settings = load_settings(env={}, toml_path=tables)
    assert settings.dimse_strict
    assert settings.modalities == (
        RemoteAE("ORTHANC", "10.0.0.9", 4242),
        RemoteAE("US1", "10.0.0.0/24", 104, frozenset({"echo", "store"})),
    )
    strings = tmp_path / "strings.toml"  # the string form still works
    strings.write_text('modalities = ["CT1@10.0.0.5:104/store"]\n', encoding="utf-8")
    assert load_settings(env={}, toml_path=strings).modalities == (
        RemoteAE("CT1", "10.0.0.5", 104, frozenset({"store"})),
    )


@pytest.mark.parametrize(
    "table",
    [
        'title = "X"\nhost = "h"\nport = 0\n',
        'title = "X"\nhost = "h"\nport = "abc"\n',
        'title = "MUCH_TOO_LONG_TITLE"\nhost = "h"\nport = 104\n',
        'title = "X"\nhost = "h"\nport = 104\nservices = ["print"]\n',
        'title = "X"\nhost = "h"\nport = 104\nservices = []\n',
        'title = "X"\nhost = "h"\nport = 104\naddress = "typo"\n',
        'host = "h"\nport = 104\n',
    ],
)
def test_a_bad_modality_table_is_refused_at_start(tmp_path: Path, table: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[[modalities]]\n" + table, encoding="utf-8")
    with pytest.raises(ConfigError, match="modalit"):
        load_settings(env={}, toml_path=config)
