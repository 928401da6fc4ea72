"""The fixed cost of an HTTP request: server CPU per request and the latency spread.

usage: http_edge.py PORT DATA_DIR SERVER_PID [--n N] [--shapes a,b,...]

Logs in as bench / bench-password-123 on a running ``klinika serve`` whose index is
``DATA_DIR/index.sqlite`` (for the UIDs of the big series), then for each shape sends the same
request N times on one keep-alive connection (``frames6``: 6 clients with their own
connections over the big series' instances; ``stow25``: POSTs of 25 instances of the big series
with fresh UIDs) and prints the server's CPU per request (user + system of SERVER_PID and its
children from /proc) with p50/p95/p99 of the wall time (``frames6+qido``: frames6 with a
seventh client sending the OHIF study list meanwhile; CPU per frame then includes the QIDOs').
It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
OHIF_LIST = (
    "/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060"
)
QIDO_12 = "/dicom-web/studies?limit=12"
BOUNDARY = "klinika-bench-boundary"


def server_pids(pid: int) -> list[int]:
    """The server and its children (the DIMSE processes of ``klinika serve``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(c) for c in children)]


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def login(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"username": "bench", "password": "bench-password-123"})
    connection.request("POST", "/api/auth/login", body, {"content-type": "application/json"})
    token: str = json.loads(connection.getresponse().read())["access_token"]
    connection.close()
    return token


def big_series(data_dir: Path) -> list[tuple[str, str, str]]:
    """(study, series, instance) UIDs of the biggest series, in instance order."""
    index = sqlite3.connect(f"file:{data_dir / 'index.sqlite'}?mode=ro", uri=True)
    rows = index.execute(
        "SELECT st.study_instance_uid, se.series_instance_uid, i.sop_instance_uid "
        "FROM instances i JOIN series se ON se.pk = i.series_pk "
        "JOIN studies st ON st.pk = se.study_pk "
        "WHERE se.pk = (SELECT series_pk FROM instances GROUP BY series_pk "
        "ORDER BY count(*) DESC LIMIT 1) ORDER BY i.instance_number"
    ).fetchall()
    index.close()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def frame_path(uids: tuple[str, str, str]) -> str:
    study, series, sop = uids
    return f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1"


def percentiles(latencies: list[float]) -> str:
    latencies = sorted(latencies)
    n = len(latencies)
    return " ".join(
        f"p{q}={latencies[min(n - 1, int(n * q / 100))] * 1000:.2f}" for q in (50, 90, 95, 99)
    )


def sequential(port: int, headers: dict[str, str], paths: list[str], n: int, pids: list[int]):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for k in range(50):  # warm-up: caches, the session cache, the connection
        connection.request("GET", paths[k % len(paths)], headers=headers)
        connection.getresponse().read()
    latencies = []
    status, size = 0, 0
    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    for k in range(n):
        started = time.perf_counter()
        connection.request("GET", paths[k % len(paths)], headers=headers)
        response = connection.getresponse()
        body = response.read()
        latencies.append(time.perf_counter() - started)
        status, size = response.status, len(body)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds(pids) - cpu0
    connection.close()
    return status, size, cpu, wall, latencies


def concurrent(
    port: int,
    headers: dict[str, str],
    paths: list[str],
    clients: int,
    pids: list[int],
    beside: tuple[str, dict[str, str]] | None = None,
):
    """Every path once, shared out to ``clients`` threads with a connection each; with
    ``beside`` (a path and its headers), one more client sends that request over and over
    until they are done (its requests are not counted: the figures are the others')."""
    latencies: list[float] = []
    lock = threading.Lock()
    todo = list(paths)
    done = threading.Event()

    def neighbour() -> None:
        assert beside is not None
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while not done.is_set():
            connection.request("GET", beside[0], headers=beside[1])
            connection.getresponse().read()
        connection.close()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while True:
            with lock:
                if not todo:
                    break
                path = todo.pop()
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            connection.getresponse().read()
            with lock:
                latencies.append(time.perf_counter() - started)
        connection.close()

    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    side = threading.Thread(target=neighbour) if beside else None
    for thread in [*threads, *([side] if side else [])]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    if side:
        side.join()
    return 200, 0, cpu_seconds(pids) - cpu0, time.perf_counter() - wall0, latencies


def stow_bodies(files: list[Path], posts: int, per_post: int) -> list[bytes]:
    """``posts`` multipart bodies of ``per_post`` instances each, every one with new UIDs."""
    datasets = [pydicom.dcmread(f) for f in files[:per_post]]
    bodies = []
    for _ in range(posts):
        study, series = generate_uid(), generate_uid()
        out = io.BytesIO()
        for dataset in datasets:
            dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
            dataset.SOPInstanceUID = generate_uid()
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            part = io.BytesIO()
            dataset.save_as(part, enforce_file_format=True)
            out.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            out.write(part.getvalue() + b"\r\n")
        out.write(f"--{BOUNDARY}--\r\n".encode())
        bodies.append(out.getvalue())
    return bodies


def stow(port: int, token: str, bodies: list[bytes], pids: list[int]):
    headers = {
        "authorization": "Bearer " + token,
        "accept": "application/dicom+json",
        "content-type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
    }
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies, status = [], 0
    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", "/dicom-web/studies", body, headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        status = response.status
    return status, 0, cpu_seconds(pids) - cpu0, time.perf_counter() - wall0, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("server_pid", type=int)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--shapes", default="health,qido12,ohif,frame,frames6")
    parser.add_argument("--stow-files", type=Path, default=None, help="folder of the big series")
    parser.add_argument("--stow-posts", type=int, default=8)
    args = parser.parse_args()
    pids = server_pids(args.server_pid)
    token = login(args.port)
    auth = {"authorization": "Bearer " + token}
    json_headers = {**auth, "accept": "application/dicom+json"}
    frame_headers = {**auth, "accept": FRAME_ACCEPT}
    series = big_series(args.data_dir)
    frames = [frame_path(uids) for uids in series]
    for shape in args.shapes.split(","):
        if shape == "health":
            result = sequential(args.port, {}, ["/health"], args.n, pids)
        elif shape == "qido12":
            result = sequential(args.port, json_headers, [QIDO_12], args.n, pids)
        elif shape == "ohif":
            result = sequential(args.port, json_headers, [OHIF_LIST], args.n, pids)
        elif shape == "frame":
            result = sequential(args.port, frame_headers, frames, args.n, pids)
        elif shape == "frames6":
            result = concurrent(args.port, frame_headers, frames * 4, 6, pids)
        elif shape == "frames6+qido":  # the frames' figures, a QIDO client beside them
            beside = (OHIF_LIST, json_headers)
            result = concurrent(args.port, frame_headers, frames * 4, 6, pids, beside)
        elif shape == "stow25":
            files = sorted(p for p in (args.stow_files or Path()).iterdir() if p.is_file())
            bodies = stow_bodies(files, args.stow_posts, 25)
            result = stow(args.port, token, bodies, pids)
        else:
            raise SystemExit(f"unknown shape {shape}")
        status, size, cpu, wall, latencies = result
        count = len(latencies) * (25 if shape == "stow25" else 1)
        print(
            f"{shape:8} status {status} {size}B  cpu/op {cpu / count * 1000:.3f} ms  "
            f"wall/op {wall / count * 1000:.3f} ms  {percentiles(latencies)}  "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
