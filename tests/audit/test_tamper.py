"""An insider who can write the database cannot rewrite or cut the trail unnoticed: the chain is
keyed (HMAC under a key outside the database), signed checkpoints and backup manifests anchor
its head, and verify gives no false alarm while other processes append."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from klinika.audit import KEYED_CHAIN_START, Actor, event_hash
from klinika.audit.schema import audit_chain, audit_events
from klinika.backup import audit_anchors, create_backup
from klinika.cli.main import cli
from tests.auth.conftest import SECRET, Installation

DOCTOR = Actor("doctor", "doctor")

DROP_TRIGGERS = {
    "sqlite": ["DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete"],
    "postgresql": ["DROP TRIGGER audit_events_append_only ON audit_events"],
}


def fill(site: Installation, count: int) -> None:
    for n in range(count):
        site.runtime.audit.record(DOCTOR, "dicom:read", "success", details={"n": n})


def rows(site: Installation) -> list[dict]:
    with site.runtime.database.reader.connect() as connection:
        found = connection.execute(sa.select(audit_events).order_by(audit_events.c.seq))
        return [dict(row) for row in found.mappings()]


def rewrite(site: Installation, kept: list[dict], *, key: bytes | None = None) -> None:
    """What an attacker with write access to the database does: drop the triggers, replace
    every event by ``kept`` re-numbered and re-chained (unkeyed unless given a key), fix the
    head."""
    prev = "0" * 64
    for seq, row in enumerate(kept, start=1):
        row["seq"], row["prev_hash"] = seq, prev
        row["hash"] = prev = event_hash(row, key)
    with site.runtime.database.writer.begin() as connection:
        for statement in DROP_TRIGGERS[site.runtime.database.dialect]:
            connection.exec_driver_sql(statement)
        connection.execute(sa.delete(audit_events))
        connection.execute(sa.insert(audit_events), kept)
        connection.execute(
            sa.update(audit_chain).where(audit_chain.c.id == 1).values(seq=len(kept), hash=prev)
        )


def cut(site: Installation, events: int) -> None:
    """Delete the newest ``events`` events and move the head back to the one before them."""
    remaining = rows(site)[:-events]
    with site.runtime.database.writer.begin() as connection:
        for statement in DROP_TRIGGERS[site.runtime.database.dialect]:
            connection.exec_driver_sql(statement)
        connection.execute(sa.delete(audit_events).where(audit_events.c.seq > len(remaining)))
        connection.execute(
            sa.update(audit_chain)
            .where(audit_chain.c.id == 1)
            .values(seq=remaining[-1]["seq"], hash=remaining[-1]["hash"])
        )


def cli_verify(site: Installation, *extra: str) -> tuple[int, str]:
    env = {
        "KLINIKA_JWT_SECRET": SECRET,
        "KLINIKA_FSYNC": "false",
        "KLINIKA_DATABASE_URL": site.settings.database_url,
    }
    outcome = CliRunner().invoke(
        cli, ["--data-dir", str(site.settings.data_dir), "audit", "verify", *extra], env=env
    )
    return outcome.exit_code, outcome.output


def test_a_new_installation_chains_with_the_key_from_its_first_event(site: Installation) -> None:
    key_file = site.settings.audit_key_path
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = rows(site)[0]
    assert first["seq"] == 1 and first["action"] == KEYED_CHAIN_START
    with site.runtime.database.reader.connect() as connection:
        everything = connection.execute(sa.select(audit_events)).all()
    stored = " ".join(str(value) for row in everything for value in row)
    assert key_file.read_text().strip() not in stored  # the key is not in the database
    result = site.runtime.audit.verify()
    assert result.ok and result.keyed_from == 1


def test_deleting_an_export_and_rechaining_without_the_key_fails_verify(
    site: Installation,
) -> None:
    fill(site, 5)
    site.runtime.audit.record(DOCTOR, "dicom:export", "success", study_uid="1.2.3", patient_id="P")
    fill(site, 5)
    assert site.runtime.audit.verify().ok
    kept = [row for row in rows(site) if row["action"] != "dicom:export"]
    rewrite(site, kept)  # the unkeyed SHA-256 of the old chain: all links and hashes agree
    result = site.runtime.audit.verify()
    assert not result.ok and "altered" in (result.problem or "")
    code, output = cli_verify(site)
    assert code == 1 and "BROKEN" in output


def test_rechaining_without_the_keyed_start_event_fails_verify(site: Installation) -> None:
    fill(site, 5)
    kept = [row for row in rows(site) if row["action"] != KEYED_CHAIN_START]
    rewrite(site, kept)  # as if the installation had never had a key
    result = site.runtime.audit.verify()
    assert not result.ok and "re-chained without the key" in (result.problem or "")


def test_a_chain_rewritten_with_the_key_still_differs_from_the_checkpoints(
    site: Installation,
) -> None:
    fill(site, 5)
    assert site.runtime.audit.checkpoint() is not None
    key = site.settings.audit_key_path.read_text().strip()
    kept = rows(site)
    kept[3]["details"] = '{"n":"edited"}'
    rewrite(site, kept, key=bytes.fromhex(key))  # even the key's holder is caught
    result = site.runtime.audit.verify()
    assert not result.ok and "differs from what checkpoint" in (result.problem or "")


def test_an_unkeyed_trail_of_an_older_version_keeps_verifying_after_the_key_arrives(
    site: Installation,
) -> None:
    fill(site, 3)
    old = [row for row in rows(site) if row["action"] != KEYED_CHAIN_START]
    rewrite(site, old)  # a trail as an older version wrote it: plain SHA-256, no key
    marker = site.runtime.audit.start_keyed_chain()  # what the upgraded version does at start
    assert marker is not None and marker.seq == len(old) + 1
    assert site.runtime.audit.start_keyed_chain() is None  # one keyed-chain event per trail
    fill(site, 3)
    result = site.runtime.audit.verify()
    assert result.ok and result.keyed_from == marker.seq, result
    # the old part stays protected: editing it and re-chaining it breaks the keyed event's link
    edited = rows(site)
    edited[1]["details"] = '{"n":"edited"}'
    prev = "0" * 64
    for row in edited[: marker.seq - 1]:
        row["prev_hash"] = prev
        row["hash"] = prev = event_hash(row)
    rewrite_rows(site, edited)
    broken = site.runtime.audit.verify()
    assert not broken.ok and broken.first_bad_seq == marker.seq, broken


def rewrite_rows(site: Installation, new_rows: list[dict]) -> None:
    """Replace every event by ``new_rows`` as given (no re-chaining)."""
    with site.runtime.database.writer.begin() as connection:
        connection.execute(sa.delete(audit_events))
        connection.execute(sa.insert(audit_events), new_rows)
        connection.execute(
            sa.update(audit_chain)
            .where(audit_chain.c.id == 1)
            .values(seq=new_rows[-1]["seq"], hash=new_rows[-1]["hash"])
        )


def test_cutting_the_last_30_events_fails_against_the_checkpoint(
    install: Callable[..., Installation],
) -> None:
    site = install(audit_checkpoint_events=50)
    fill(site, 100)
    lines = site.settings.audit_checkpoint_path.read_text().splitlines()
    assert len(lines) >= 2  # every 50 events
    assert site.settings.audit_checkpoint_path.stat().st_mode & 0o777 == 0o600
    site.runtime.audit.checkpoint()
    assert site.runtime.audit.verify().ok
    cut(site, 30)
    result = site.runtime.audit.verify()
    assert not result.ok and "cut from the end" in (result.problem or ""), result
    code, output = cli_verify(site)
    assert code == 1 and "cut from the end" in output


def test_cutting_the_last_30_events_fails_against_a_backup_manifest(
    site: Installation, tmp_path: Path
) -> None:
    fill(site, 100)
    destination = tmp_path / "backups"
    create_backup(site.settings.database_url, site.settings.blob_dir, destination)
    anchors, problems = audit_anchors(destination)
    assert len(anchors) == 1 and not problems
    site.settings.audit_checkpoint_path.unlink(missing_ok=True)  # the attacker removes it too
    assert site.runtime.audit.verify(anchors).ok
    cut(site, 30)
    assert site.runtime.audit.verify().ok  # without an anchor, a cut is invisible ...
    result = site.runtime.audit.verify(anchors)  # ... but the backup saw the longer trail
    assert not result.ok and "backup" in (result.problem or "")
    code, output = cli_verify(site, "--backups", str(destination))
    assert code == 1 and "cut from the end" in output


def test_a_forged_checkpoint_line_fails_verify(site: Installation) -> None:
    fill(site, 3)
    site.runtime.audit.checkpoint()
    path = site.settings.audit_checkpoint_path
    path.write_text(path.read_text().replace('"seq":', '"seq":1', 1))
    result = site.runtime.audit.verify()
    assert not result.ok and "not signed" in (result.problem or "")


def wait_for_head_beyond(site: Installation, seq: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with site.runtime.database.reader.connect() as connection:
            head = connection.execute(sa.select(audit_chain.c.seq)).scalar_one()
        if head > seq:
            return
        assert time.monotonic() < deadline, "the writer process stopped appending"


WRITER = """
import sys, pathlib
from klinika.audit import Actor
from klinika.config import load_settings
from klinika.runtime import Runtime

stop = pathlib.Path(sys.argv[1])
with Runtime(load_settings()) as runtime:
    n = 0
    while not stop.exists():
        runtime.audit.record(Actor("writer", "system"), "test:append", "success", details={"n": n})
        n += 1
        if n == 1:
            print("writing", flush=True)
"""


def test_verify_gives_no_false_alarm_while_another_process_appends(
    site: Installation, tmp_path: Path
) -> None:
    for n in range(3000):  # a scan of several batches: the writer appends during each verify
        site.runtime.audit.record_soon(DOCTOR, "dicom:read", "success", details={"n": n})
    site.runtime.audit.flush()
    stop = tmp_path / "stop"
    env = {
        **os.environ,
        "KLINIKA_DATA_DIR": str(site.settings.data_dir),
        "KLINIKA_DATABASE_URL": site.settings.database_url,
        "KLINIKA_JWT_SECRET": SECRET,
        "KLINIKA_FSYNC": "false",
        "KLINIKA_AUDIT_CHECKPOINT_EVENTS": "25",  # the writer checkpoints as it goes, too
    }
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(stop)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        heads: list[int] = []
        for _ in range(5):
            result = site.runtime.audit.verify()
            assert result.ok, result.problem
            heads.append(result.head_seq)
            wait_for_head_beyond(site, result.head_seq)  # the writer appends between runs
        assert heads == sorted(heads) and len(set(heads)) == 5, heads
    finally:
        stop.touch()
        writer.wait(timeout=60)
    assert writer.returncode == 0
    final = site.runtime.audit.verify()
    assert final.ok and final.anchors >= 1 and final.head_seq > heads[-1]
