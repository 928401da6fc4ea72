"""The ``klinika`` command as a user runs it: import and demo."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom

from klinika.config import load_settings
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.runtime import Runtime
from tests.conftest import PYDICOM_DATA, SAMPLES, samples_matching


def klinika(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "klinika", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_folder_and_zip_reports_stored_duplicates_and_rejections(tmp_path: Path) -> None:
    folder = SAMPLES / "dcmqi" / "ct-3slice"
    archive = tmp_path / "samples.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in samples_matching(SAMPLES / "generated", "*.dcm"):
            zipped.write(path, path.name)
    result = klinika(tmp_path / "data", "import", str(folder), str(archive))
    assert result.returncode == 0, result.stderr
    malformed = len(samples_matching(SAMPLES / "generated", "malformed_*.dcm"))
    # a bare data set (no preamble, no meta) is read as DCMTK and Orthanc read it (issue 16)
    assert f"rejected {malformed - 1}" in result.stdout
    assert "malformed_no_preamble_no_meta.dcm" not in result.stderr
    assert "malformed_truncated_in_pixeldata.dcm: pixel data declares" in result.stderr
    again = klinika(tmp_path / "data", "import", str(folder))
    assert "stored 0, duplicate 3, rejected 0" in again.stdout


def test_import_goes_on_past_a_damaged_zip_member(tmp_path: Path) -> None:
    ct, mr = PYDICOM_DATA / "CT_small.dcm", PYDICOM_DATA / "MR_small.dcm"
    bundle = tmp_path / "damaged.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(ct, "ct.dcm")
        zipped.write(mr, "mr.dcm")
    raw = bytearray(bundle.read_bytes())
    start = raw.index(b"mr.dcm", raw.index(b"ct.dcm") + 6) + len(b"mr.dcm")
    raw[start + 100 : start + 140] = bytes(40)  # damage the MR's compressed bytes
    bundle.write_bytes(bytes(raw))
    result = klinika(tmp_path / "data", "import", str(bundle))
    assert result.returncode == 0, result.stderr
    assert "stored 1" in result.stdout and "rejected 1" in result.stdout, result.stdout
    assert "damaged.zip!mr.dcm: ZIP member" in result.stderr


def test_demo_loads_every_modality_and_prints_a_first_admin_password(tmp_path: Path) -> None:
    result = klinika(tmp_path / "data", "demo", "--ct-slices", "12")
    assert result.returncode == 0, result.stderr
    assert "stored 62, duplicate 0, rejected 0" in result.stdout
    assert "user 'admin', password '" in result.stdout
    with Runtime(load_settings(env={}, data_dir=tmp_path / "data")) as runtime:
        studies = runtime.archive.search(Query(Level.STUDY)).matches
        modalities = {m for s in studies for m in s["00080061"]["Value"]}
        assert modalities == {"CT", "MR", "CR", "US"}
        cyrillic = runtime.archive.search(Query(Level.STUDY, match={"PatientName": "иванов*"}))
        assert cyrillic.matches[0]["00201208"]["Value"] == [12]
    rerun = klinika(tmp_path / "data", "demo", "--ct-slices", "12")
    assert "duplicate 62" in rerun.stdout and "password" not in rerun.stdout


def test_export_writes_a_zip_and_deidentify_removes_the_patient(tmp_path: Path) -> None:
    ct = PYDICOM_DATA / "CT_small.dcm"
    assert klinika(tmp_path / "data", "import", str(ct)).returncode == 0
    original = pydicom.dcmread(ct)
    for flags, identified in (((), True), (("--deidentify",), False)):
        out = tmp_path / f"export-{identified}.zip"
        result = klinika(
            tmp_path / "data", "export", original.StudyInstanceUID, "--out", str(out), *flags
        )
        assert result.returncode == 0, result.stderr
        with zipfile.ZipFile(out) as bundle:
            image = next(n for n in bundle.namelist() if n != "DICOMDIR")
            exported = pydicom.dcmread(io.BytesIO(bundle.read(image)))
        assert (exported.PatientID == original.PatientID) is identified
        assert ("PatientIdentityRemoved" in exported) is not identified
    missing = klinika(tmp_path / "data", "export", "1.2.3", "--out", str(tmp_path / "x.zip"))
    assert missing.returncode != 0 and "1.2.3" in missing.stderr


def test_help_has_no_rst_markup() -> None:
    from click.testing import CliRunner

    from klinika.cli.main import cli

    def commands(group, path):  # type: ignore[no-untyped-def]
        yield path
        for name, sub in getattr(group, "commands", {}).items():
            yield from commands(sub, [*path, name])

    runner = CliRunner()
    for path in commands(cli, []):
        shown = runner.invoke(cli, [*path, "--help"]).output
        assert "``" not in shown and ":class:" not in shown and ":mod:" not in shown, path
    assert "klinika backup DEST [--full]" in runner.invoke(cli, ["backup", "--help"]).output


def test_serve_on_a_busy_port_fails_first_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = klinika(
            tmp_path / "data", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-dimse"
        )
    assert run.returncode != 0
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in run.stderr
    assert "--port" in run.stderr and "HTTP on http://" not in run.stdout + run.stderr


def test_importing_an_empty_folder_warns(tmp_path: Path) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    run = klinika(tmp_path / "data", "import", str(tmp_path / "empty"))
    assert run.returncode == 0
    assert "warning: no files found" in run.stderr and "nothing was imported" in run.stderr


def test_import_reads_a_file_without_preamble(tmp_path: Path) -> None:
    from tests.dicom.test_bare_dataset import bare
    from tests.factories import make_instance

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "IM0001").write_bytes(bare(make_instance()))
    run = klinika(tmp_path / "data", "import", str(tmp_path / "old"))
    assert run.returncode == 0 and "stored 1, duplicate 0, rejected 0" in run.stdout, run.stderr
