"""Server CPU seconds per DIMSE operation, Orthanc vs Klinika, from two bench_pacs.py results
of the same run (sections ingest_cstore, dimse_find, cget, cmove), as a Markdown table.

usage: bench/dimse_cpu.py ORTHANC.json KLINIKA.json

CPU (user + system of the server processes, from /proc, as bench_pacs.py's Meter reads it)
is the steady figure on a shared machine; wall-clock rates are printed for information.
C-MOVE's CPU includes the harness's storescp receiver, the same program for both servers.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _rows(result: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """operation -> (server CPU ms per unit, wall-clock figure)."""
    sections = result["results"]
    rows: dict[str, tuple[float | None, str]] = {}
    ingest = sections.get("ingest_cstore") or {}
    if "meter" in ingest:
        cpu = ingest["meter"].get("server_cpu_s")
        rows["C-STORE, one association (per instance)"] = (
            None if cpu is None else 1000 * cpu / ingest["instances"],
            f"{ingest['instances_per_s']} inst/s",
        )
    find = (sections.get("dimse_find") or {}).get("pynetdicom_persistent") or {}
    if "meter" in find:
        shapes = find["shapes"]
        queries = len(shapes) * (result["params"]["dimse_repeat"] + 1)
        cpu = find["meter"].get("server_cpu_s")
        p50 = statistics.median(s["latency"]["p50_ms"] for s in shapes.values())
        rows["C-FIND, association reused (per query)"] = (
            None if cpu is None else 1000 * cpu / queries,
            f"p50 {p50:.1f} ms (median of {len(shapes)} shapes)",
        )
    for name, label in (("cget", "C-GET"), ("cmove", "C-MOVE")):
        section = sections.get(name) or {}
        if "meters" not in section:
            continue
        cpus = [m.get("server_cpu_s") for m in section["meters"]]
        cpu = statistics.median(cpus) if all(c is not None for c in cpus) else None
        rows[f"{label} of the big study (per instance)"] = (
            None if cpu is None else 1000 * cpu / section["study_instances"],
            f"{section['instances_per_s']} inst/s",
        )
    return rows


def main() -> None:
    orthanc, klinika = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    theirs, ours = _rows(orthanc), _rows(klinika)
    print(
        f"{_cpu_model()}, {orthanc['host']['nproc']} cores; load average at the end: "
        f"Orthanc run {orthanc['host']['loadavg_end'][0]:.1f}, "
        f"Klinika run {klinika['host']['loadavg_end'][0]:.1f}\n"
    )
    print(
        "| operation | Orthanc CPU ms | Klinika CPU ms | CPU ratio (Orthanc / Klinika) "
        "| Orthanc wall | Klinika wall |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for operation, (their_cpu, their_wall) in theirs.items():
        our_cpu, our_wall = ours.get(operation, (None, "-"))
        ratio = f"×{their_cpu / our_cpu:.2f}" if their_cpu and our_cpu else "-"
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(
            f"| {operation} | {fmt(their_cpu)} | {fmt(our_cpu)} | {ratio} "
            f"| {their_wall} | {our_wall} |"
        )
    ok = {
        name: (r["results"].get("correctness") or r.get("correctness"))
        for name, r in (("orthanc", orthanc), ("klinika", klinika))
    }
    print(f"\ncorrectness: {json.dumps(ok)}")


if __name__ == "__main__":
    main()
