"""Klinika at scale: N synthetic instances through the one ingest path, and what it costs.

usage: bench/scale.py --instances N [--database postgresql] [--out results.json]
                      [--checkpoints 100000,500000,1000000] [--runs 20] [--keep DIR]

A fresh installation of its own (a temporary data folder; with ``--database postgresql`` a
throwaway PostgreSQL cluster from Debian's server binaries, fsync and synchronous commit on,
as in production; runs before 2026-12-04 05:00 had both off). It generates realistic small
instances (many patients, studies of ~46 instances in 2–3 series, CT/MR/CR/US, Latin and
Cyrillic names, dates over ten years, 16×16 pixels), stores them with ``Archive.store_many``
(what ``klinika import``, STOW-RS and C-STORE call), and at each checkpoint (default: every
100k and N) starts ``klinika serve`` on the installation and measures, p50/p95 over ``--runs``:
QIDO-RS over HTTP (the shapes of ../shared/bench: limit, includefield, OHIF's study list, paging,
PatientName wildcards Latin and Cyrillic, a StudyDate range, ModalitiesInStudy, PatientID,
StudyInstanceUID, series and instances of a study), C-FIND on one reused association, the
worklist page (one page + count), and series metadata; plus the ingest rate and CPU per
instance of the last chunk (``cpu_ms_per_instance``: the whole bench process, the instances'
generation included; ``store_cpu_ms_per_instance``: inside ``store_many`` only) and the
index's bytes per instance. At the end: fsck and a backup.

The JSON result holds ``qido_p95_ms`` (the worst p95 over the QIDO shapes at N),
``cfind_p95_ms``, ``worklist_p95_ms``, ``ingest_instances_per_s`` (one figure per chunk),
``index_bytes_per_instance``, and the same per checkpoint under ``checkpoints``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundImageStorage,
    generate_uid,
)
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from klinika.config import load_settings  # noqa: E402
from klinika.dimse.handlers import set_nodelay  # noqa: E402
from klinika.runtime import Runtime  # noqa: E402

FAMILY = ["Smith", "Garcia", "Müller", "Dubois", "Rossi", "Nowak", "Иванов", "Петров", "Сидоров"]
GIVEN = ["Anna", "Ivan", "Olga", "Jean", "Maria", "Пётр"]
KINDS = [  # modality, SOP class, series per study, instances per series
    ("CT", CTImageStorage, 2, 23),
    ("MR", MRImageStorage, 3, 15),
    ("CR", ComputedRadiographyImageStorage, 1, 2),
    ("US", UltrasoundImageStorage, 1, 6),
]
PIXELS = bytes(range(256)) * 2  # 16×16, 16 bits
PASSWORD = "Scale-bench-password-7391"
UID_ROOT = "1.2.826.0.1.3680043.8.498."


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class Generator:
    """Deterministic synthetic studies; :meth:`instances` yields Part-10 bytes."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.study_number = 0
        self.sample: dict[str, Any] = {}  # one study's values, for the query shapes

    def _study(self) -> Iterator[bytes]:
        rng = self.rng
        self.study_number += 1
        patient = rng.randint(1, max(1, self.study_number * 2 // 5 + 1))
        patient_rng = random.Random(patient)
        name = f"{patient_rng.choice(FAMILY)}^{patient_rng.choice(GIVEN)}"
        modality, sop_class, series_count, per_series = rng.choices(KINDS, [5, 3, 1, 1])[0]
        date = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randint(0, 3650))
        study_uid = generate_uid(UID_ROOT)
        self.sample = {
            "StudyInstanceUID": study_uid,
            "PatientID": f"P{patient:08d}",
            "StudyDate": date.strftime("%Y%m%d"),
        }
        for series_index in range(series_count):
            series_uid = generate_uid(UID_ROOT)
            self.sample["SeriesInstanceUID"] = series_uid
            for number in range(1, per_series + 1):
                yield self._instance(
                    sop_class, modality, name, patient, date, study_uid, series_uid,
                    series_index + 1, number,
                )  # fmt: skip

    @staticmethod
    def _instance(
        sop_class: str,
        modality: str,
        name: str,
        patient: int,
        date: dt.date,
        study_uid: str,
        series_uid: str,
        series_number: int,
        number: int,
    ) -> bytes:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = generate_uid(UID_ROOT)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientName, ds.PatientID = name, f"P{patient:08d}"
        ds.PatientBirthDate, ds.PatientSex = f"{1930 + patient % 90}0101", "MF"[patient % 2]
        ds.StudyDate = ds.SeriesDate = date.strftime("%Y%m%d")
        ds.StudyTime, ds.AccessionNumber = "101500", f"A{patient:07d}{series_number}"
        ds.StudyDescription = f"{modality} examination"
        ds.SeriesDescription = f"{modality} series {series_number}"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, series_number, number
        ds.StudyID = "1"
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = PIXELS
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    def instances(self, count: int) -> Iterator[bytes]:
        """``count`` instances (whole studies, the last one cut short)."""
        made = 0
        while made < count:
            for data in self._study():
                yield data
                made += 1
                if made == count:
                    return


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2)}


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process so far, from /proc (Linux; 0 elsewhere)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def timed(call: Any, runs: int, server_pid: int | None = None) -> dict[str, float]:
    """p50/p95 of ``call`` over ``runs``; with ``server_pid``, also the server's CPU
    milliseconds per call (the steadier figure on a shared machine)."""
    call()  # warm-up
    samples = []
    cpu_start = process_cpu_s(server_pid) if server_pid else 0.0
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    figures = percentiles(samples)
    if server_pid:
        cpu_ms = (process_cpu_s(server_pid) - cpu_start) * 1000 / runs
        figures["server_cpu_ms"] = round(cpu_ms, 2)
    return figures


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[str, int, dict[str, str], int]]:
    """``klinika serve`` on the installation: its URL, DIMSE port, an admin's headers and
    its process id."""
    port, dimse_port = free_port(), free_port()
    server_env = {
        **os.environ,
        **env,
        "KLINIKA_HTTP_PORT": str(port),
        "KLINIKA_DIMSE_PORT": str(dimse_port),
        "KLINIKA_MODALITIES": "SCALE@127.0.0.1:11112/echo,find",
        "KLINIKA_LOG_LEVEL": "warning",
    }
    log = Path(env["KLINIKA_DATA_DIR"]).parent / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "klinika", "serve"], env=server_env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"klinika serve exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("klinika serve did not answer /health")
            time.sleep(0.5)
        answer = requests.post(
            url + "/api/auth/login", json={"username": "scale", "password": PASSWORD}, timeout=60
        )
        answer.raise_for_status()
        token = answer.json()["access_token"]
        yield url, dimse_port, {"Authorization": f"Bearer {token}"}, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def qido_shapes(sample: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    study, series = sample["StudyInstanceUID"], sample["SeriesInstanceUID"]
    return {
        "all_limit25": ("/studies", {"limit": "25"}),
        "includefield_all_limit25": ("/studies", {"includefield": "all", "limit": "25"}),
        "ohif_studylist": (
            "/studies",
            {
                "limit": "101",
                "offset": "0",
                "fuzzymatching": "false",
                "includefield": "00081030,00080060",
            },
        ),
        "paging_limit10_offset10": ("/studies", {"limit": "10", "offset": "10"}),
        "patientname_wildcard": ("/studies", {"PatientName": "Gar*"}),
        "patientname_wildcard_cyrillic": ("/studies", {"PatientName": "Пет*"}),
        "studydate_range": ("/studies", {"StudyDate": "20180101-20180331"}),
        "modalitiesinstudy": ("/studies", {"ModalitiesInStudy": "MR"}),
        "patientid_exact": ("/studies", {"PatientID": sample["PatientID"]}),
        "studyuid_exact": ("/studies", {"StudyInstanceUID": study}),
        "series_of_study": (f"/studies/{study}/series", {}),
        "instances_of_series": (f"/studies/{study}/series/{series}/instances", {}),
    }


def measure_queries(env: dict[str, str], sample: dict[str, Any], runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with serving(env) as (url, dimse_port, headers, pid), requests.Session() as session:
        session.headers.update(headers)

        def get(path: str, params: dict[str, str] | None = None) -> None:
            answer = session.get(url + path, params=params, timeout=120)
            if answer.status_code not in (200, 204):
                raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")

        qido = {
            name: timed(lambda p=path, q=params: get("/dicom-web" + p, q), runs, pid)
            for name, (path, params) in qido_shapes(sample).items()
        }
        result["qido"] = qido
        result["qido_p95_ms"] = max(shape["p95_ms"] for shape in qido.values())
        study, series = sample["StudyInstanceUID"], sample["SeriesInstanceUID"]
        result["metadata"] = timed(
            lambda: get(f"/dicom-web/studies/{study}/series/{series}/metadata"), runs
        )
        session.headers["Accept"] = "text/html"
        result["worklist"] = timed(lambda: get("/worklist"), runs)
        result["worklist_p95_ms"] = result["worklist"]["p95_ms"]
        result["cfind"] = measure_cfind(dimse_port, sample, runs)
        result["cfind_p95_ms"] = max(shape["p95_ms"] for shape in result["cfind"].values())
    return result


def measure_cfind(port: int, sample: dict[str, Any], runs: int) -> dict[str, Any]:
    ae = AE(ae_title="SCALE")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    # TCP_NODELAY as the bench's peers use it (no 40 ms delayed-ACK stalls on small PDUs)
    nodelay = [(evt.EVT_CONN_OPEN, set_nodelay)]
    assoc = ae.associate("127.0.0.1", port, ae_title="KLINIKA", evt_handlers=nodelay)
    if not assoc.is_established:
        raise RuntimeError("C-FIND association refused")
    shapes = {
        "patientid": {"PatientID": sample["PatientID"]},
        "patientname_wildcard": {"PatientName": "Gar*"},
        "studydate_range": {"StudyDate": "20180101-20180110"},
        "modalitiesinstudy": {"ModalitiesInStudy": "US", "StudyDate": "20180101-20180131"},
    }

    def find(keys: dict[str, str]) -> None:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate",
                        "ModalitiesInStudy"):  # fmt: skip
            setattr(query, keyword, keys.get(keyword, ""))
        for status, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if status and status.Status not in (0xFF00, 0xFF01, 0x0000):
                raise RuntimeError(f"C-FIND status 0x{status.Status:04X}")

    try:
        return {name: timed(lambda k=keys: find(k), runs) for name, keys in shapes.items()}
    finally:
        assoc.release()


def index_bytes(env: dict[str, str]) -> int:
    url = env.get("KLINIKA_DATABASE_URL", "")
    if not url:
        folder = Path(env["KLINIKA_DATA_DIR"])
        return sum(p.stat().st_size for p in folder.glob("index.sqlite*"))
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        return int(row[0])


def run(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    klinika = [sys.executable, "-m", "klinika"]
    child_env = {**os.environ, **env}
    subprocess.run(
        [*klinika, "user", "add", "scale", "--role", "admin", "--password", PASSWORD],
        check=True, env=child_env, capture_output=True,
    )  # fmt: skip
    settings = load_settings(env=child_env)
    runtime = Runtime(settings)
    generator = Generator()
    checkpoints = sorted({c for c in args.checkpoints if c < args.instances} | {args.instances})
    stored, rates, results = 0, [], []
    chunk_start, cpu_start = time.perf_counter(), time.process_time()
    store_cpu = 0.0  # CPU inside store_many only: cpu_start's figure includes the generator
    batch: list[bytes] = []
    try:
        for data in generator.instances(args.instances):
            batch.append(data)
            if len(batch) == args.batch or stored + len(batch) in checkpoints:
                before = time.process_time()
                outcomes = runtime.archive.store_many(batch)
                store_cpu += time.process_time() - before
                refused = [o for o in outcomes if o.status == "rejected"]
                if refused:
                    raise RuntimeError(f"rejected: {refused[0]}")
                stored += len(batch)
                batch = []
                if stored % args.chunk == 0 or stored in checkpoints:
                    seconds = time.perf_counter() - chunk_start
                    cpu = time.process_time() - cpu_start
                    done = stored - sum(r["instances"] for r in rates)
                    rates.append({
                        "up_to": stored, "instances": done,
                        "instances_per_s": round(done / seconds, 1),
                        "cpu_ms_per_instance": round(cpu * 1000 / done, 2),
                        "store_cpu_ms_per_instance": round(store_cpu * 1000 / done, 2),
                    })  # fmt: skip
                    print(f"{stored:>9} stored, {rates[-1]['instances_per_s']} inst/s", flush=True)
                    chunk_start, cpu_start = time.perf_counter(), time.process_time()
                    store_cpu = 0.0
                if stored in checkpoints:
                    runtime.close()
                    point = {"instances": stored, "ingest": rates[-1]}
                    point["index_bytes_per_instance"] = round(index_bytes(env) / stored, 1)
                    point |= measure_queries(env, generator.sample, args.runs)
                    print(json.dumps({k: point[k] for k in point if k.endswith("_ms")}), flush=True)
                    results.append(point)
                    if args.out:  # a long run's figures survive what comes after
                        partial = {"partial": True, "database": args.database, "ingest": rates}
                        text = json.dumps(partial | {"checkpoints": results}, ensure_ascii=False)
                        args.out.write_text(text + "\n")
                    runtime = Runtime(settings)
                    chunk_start, cpu_start = time.perf_counter(), time.process_time()
                    store_cpu = 0.0
    finally:
        runtime.close()
    final = results[-1]
    summary: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "database": args.database,
        "instances": args.instances,
        "qido_p95_ms": final["qido_p95_ms"],
        "cfind_p95_ms": final["cfind_p95_ms"],
        "worklist_p95_ms": final["worklist_p95_ms"],
        "index_bytes_per_instance": final["index_bytes_per_instance"],
        "ingest_instances_per_s": [r["instances_per_s"] for r in rates],
        "ingest": rates,
        "checkpoints": results,
    }
    for name, command in (("fsck_s", ["fsck"]), ("backup_s", ["backup", args.work + "/backup"])):
        start = time.perf_counter()
        subprocess.run([*klinika, *command], check=True, env=child_env, capture_output=True)
        summary[name] = round(time.perf_counter() - start, 1)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, required=True)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--checkpoints",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000, 500_000, 1_000_000],
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500, help="instances per store_many call")
    parser.add_argument("--chunk", type=int, default=100_000, help="ingest rate reported per")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="klinika-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    args.work = str(work)
    env = {"KLINIKA_DATA_DIR": str(work / "data"), "KLINIKA_PASSWORD_HASH_PROFILE": "test"}
    try:
        with contextlib.ExitStack() as stack:
            if args.database == "postgresql":
                from tests.databases import running_postgres

                server = stack.enter_context(running_postgres(durable=True))
                env["KLINIKA_DATABASE_URL"] = f"{server}/postgres"
            summary = run(args, env)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
