"""C-STORE throughput with one storescu association vs several at once, on the same data.

Makes two re-UIDed copies of a sample of a gen_data.py folder (so neither run meets
duplicates), sends copy 1 with one storescu process and copy 2 split into N disjoint parts
with N storescu processes started together, and reports instances/s for both plus the
server's and the rest of the host's CPU (``other_cpu_s``: other load on a shared machine).

usage: bench/dimse_parallel.py --data DIR --dimse HOST:PORT:AET [--associations 4]
       [--sample 600] [--server-pid PID ...] [--workdir W] [--out result.json]

Works against any C-STORE SCP (Klinika, Orthanc); needs DCMTK's storescu on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
import bench_pacs


def _copy(instances: list[bench_pacs.Inst], folder: Path, salt: str) -> None:
    """Write re-UIDed copies of ``instances`` into ``folder`` (fresh study/series/SOP UIDs)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fake = bench_pacs.Bench.__new__(bench_pacs.Bench)
    for k, inst in enumerate(instances):
        _st, _se, _sop, data = bench_pacs.Bench.reuid_bytes(fake, inst, salt)
        (folder / f"{k:06d}.dcm").write_bytes(data)


def _storescu(args: argparse.Namespace, profile: Path, files: list[str]) -> list[str]:
    host, port, aet = args.dimse.rsplit(":", 2)
    return [
        "storescu",
        "-aet",
        args.calling_aet,
        "-aec",
        aet,
        host,
        port,
        "-xf",
        str(profile),
        "Bench",
        "-nh",
        *files,
    ]


def _run(args: argparse.Namespace, profile: Path, parts: list[list[str]]) -> dict[str, object]:
    """Start one storescu per part at once; wall time until the last one ends."""
    with bench_pacs.Meter(args.server_pid) as meter:
        procs = [
            subprocess.Popen(
                _storescu(args, profile, part), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            for part in parts
        ]
        outputs = [p.communicate()[0].decode("utf-8", "replace") for p in procs]
    failed = sum(out.count("Store Failed") for out in outputs)
    codes = [p.returncode for p in procs]
    count = sum(len(part) for part in parts)
    return dict(
        associations=len(parts),
        instances=count,
        rc=codes,
        store_failed=failed,
        instances_per_s=round(count / meter.wall, 1),
        meter=meter.as_dict(),
        ok=failed == 0 and not any(codes),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dimse", required=True, help="HOST:PORT:AET of the C-STORE SCP")
    ap.add_argument("--calling-aet", default="BENCH")
    ap.add_argument("--associations", type=int, default=4)
    ap.add_argument("--sample", type=int, default=600, help="instances per copy")
    ap.add_argument("--server-pid", type=int, action="append", default=[])
    ap.add_argument("--workdir", default="/tmp/dimse-parallel")
    ap.add_argument("--label", default="")
    ap.add_argument("--out")
    args = ap.parse_args()

    _studies, instances, _skipped = bench_pacs.build_index(args.data)
    instances.sort(key=lambda i: i.path)
    step = max(1, len(instances) // args.sample)
    sample = instances[::step][: args.sample]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "storescu.cfg"
    bench_pacs.write_storescu_profile(str(profile), {(i.sop_class, i.ts) for i in sample})
    salt = f"{time.time_ns()}"
    one_dir, many_dir = work / "copy-one", work / "copy-many"
    _copy(sample, one_dir, salt + "-1")
    _copy(sample, many_dir, salt + "-n")
    one_files = sorted(str(p) for p in one_dir.iterdir())
    many_files = sorted(str(p) for p in many_dir.iterdir())
    n = args.associations
    parts = [many_files[k::n] for k in range(n)]
    result = dict(
        label=args.label,
        cpu=platform.processor() or _cpu_model(),
        cores=os.cpu_count(),
        sample_instances=len(sample),
        sample_mb=round(sum(i.size for i in sample) / 1e6, 1),
        one=_run(args, profile, [one_files]),
        many=_run(args, profile, parts),
    )
    one_rate = result["one"]["instances_per_s"]  # type: ignore[index]
    many_rate = result["many"]["instances_per_s"]  # type: ignore[index]
    result["many_over_one"] = round(many_rate / one_rate, 2)
    shutil.rmtree(one_dir, ignore_errors=True)
    shutil.rmtree(many_dir, ignore_errors=True)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0 if result["one"]["ok"] and result["many"]["ok"] else 2  # type: ignore[index]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
