"""kill -9 in the middle of study management: the index switches all at once or not at all,
never refers to a missing blob, and fsck finds at most orphan blobs of the interrupted
rewrite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

from klinika.backup.fsck import fsck
from klinika.config import load_settings
from klinika.index import schema
from klinika.runtime import Runtime
from tests.conftest import wait_until
from tests.durability import assert_index_refers_to_intact_blobs

WORKER = textwrap.dedent(
    """
    import sys
    from klinika.audit import Actor
    from klinika.config import load_settings
    from klinika.runtime import Runtime
    from pydicom.uid import generate_uid
    from tests.factories import make_instance

    settings = load_settings(env={}, data_dir=sys.argv[1])
    runtime = Runtime(settings)
    study, series = generate_uid(), generate_uid()
    runtime.archive.store_many(
        make_instance(study_uid=study, series_uid=series, PatientID="CRASH-1",
                      PatientName="Name^0", rows=128, columns=128)
        for _ in range(40)
    )
    print("ready", flush=True)
    for n in range(1, 10_000):
        runtime.management.update_patient(
            "CRASH-1", {"PatientName": f"Name^{n}"}, actor=Actor("admin", "admin")
        )
        print("renamed", n, flush=True)
    """
)


def test_sigkill_during_patient_updates_leaves_one_consistent_name(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    root = Path(__file__).parents[2]
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(data_dir)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    lines: list[str] = []

    def renamed_twice() -> bool:
        line = worker.stdout.readline()  # type: ignore[union-attr]
        lines.append(line)
        if not line and worker.poll() is not None:
            raise AssertionError(f"the worker exited: {lines}")
        return line.startswith("renamed 2")

    wait_until(renamed_twice, 120, message="the worker did not rename")
    os.kill(worker.pid, signal.SIGKILL)  # in the middle of the next rewrite, most likely
    worker.wait(timeout=30)

    assert_index_refers_to_intact_blobs(data_dir)
    settings = load_settings(env={}, data_dir=data_dir, fsync=False)
    with Runtime(settings) as runtime:
        with runtime.database.reader.connect() as connection:
            names = set(connection.execute(sa.select(schema.instances.c.metadata_json)).scalars())
            counts = connection.execute(
                sa.select(schema.studies.c.number_of_study_related_instances)
            ).scalar_one()
        assert counts == 40
        spelled = {text.split('"Alphabetic":"')[1].split('"')[0] for text in names}
        assert len(spelled) == 1, spelled  # all the old name or all the new one
        report = fsck(runtime.archive)
        assert report.missing == [] and report.corrupt == [] and report.stale_counts == []
