"""The DICOMweb targets of issue 15 side by side, from two ``bench_pacs.py`` results: wall-clock
figures, their ratio, and the server CPU per operation (the steadier basis on a shared machine).

usage: .venv/bin/python bench/dicomweb_cpu.py ORTHANC.json KLINIKA.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Figures = dict[str, tuple[float, float]]


def cpu_ms(meters: list[dict[str, Any]], operations: int) -> float:
    """Median over the runs of the server's CPU milliseconds per operation."""
    values = sorted(m["server_cpu_s"] / operations * 1000 for m in meters)
    return values[len(values) // 2] if values else float("nan")


def figures(results: dict[str, Any]) -> Figures:
    """(figure, server CPU ms per operation) per row of the table."""
    out: Figures = {}
    ingest = results["ingest_compare"]
    stow = ingest["stow"]
    out["STOW-RS inst/s"] = (
        stow["instances_per_s"],
        cpu_ms([run["meter"] for run in stow["runs"]], ingest["instances"]),
    )
    frames = results["frames"]
    for mode in ("sequential_identity", "concurrent_6_identity"):
        out[f"frames {mode} frames/s"] = (
            frames[mode]["frames_per_s"],
            cpu_ms(frames[mode]["meters"], frames["frames_per_pass"]),
        )
    qido = results["qido"]
    # one meter over every shape and round, the untimed check round included
    queries = (qido["repeats"] + 1) * len(qido["shapes"])
    qido_cpu = cpu_ms([qido["meter"]], queries)
    for shape in ("all_limit25", "ohif_studylist"):
        latency = qido["shapes"][shape]["latency"]
        out[f"QIDO {shape} p95 ms"] = (latency["p95_ms"], qido_cpu)
        out[f"QIDO {shape} p50 ms"] = (latency["p50_ms"], qido_cpu)
    metadata = results["metadata"]["series_metadata"]
    out["series metadata first call ms"] = (metadata["first_call_ms"], float("nan"))
    out["series metadata repeat p50 ms"] = (metadata["latency_repeat"]["p50_ms"], float("nan"))
    return out


def main(orthanc: Path, klinika: Path) -> None:
    theirs = figures(json.loads(orthanc.read_text())["results"])
    ours = figures(json.loads(klinika.read_text())["results"])
    print("| figure | Orthanc | Klinika | ratio | server CPU ms/op (Orthanc / Klinika) |")
    print("| --- | --- | --- | --- | --- |")
    for name, (their_value, their_cpu) in theirs.items():
        our_value, our_cpu = ours[name]
        lower_is_better = name.endswith(" ms")
        ratio = their_value / our_value if lower_is_better else our_value / their_value
        cpu = "" if their_cpu != their_cpu else f"{their_cpu:.2f} / {our_cpu:.2f}"
        print(f"| {name} | {their_value} | {our_value} | ×{ratio:.2f} | {cpu} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
