"""Retention: which backups are kept, and that pruning keeps every blob they need."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from klinika.backup import Retention, backups_in, prune
from tests.backup.conftest import klinika


def fake_backups(destination: Path, days: int) -> None:
    """One backup a day from 2026-01-01, each with a blob of its own and one shared blob."""
    shared = hashlib.sha256(b"shared").hexdigest()
    start = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)
    for day in range(days):
        folder = destination / (start + dt.timedelta(days=day)).strftime("%Y%m%dT%H%M%S%fZ")
        folder.mkdir(parents=True)
        key = hashlib.sha256(str(day).encode()).hexdigest()
        for name, data in ((key, str(day).encode()), (shared, b"shared")):
            blob = destination / "blobs" / name[:2] / name[2:4] / name
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
        manifest = {
            "version": "t",
            "created": folder.name,
            "full": False,
            "index_sha256": "",
            "blobs": [[key, len(str(day))], [shared, 6]],
            "counts": {},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))


def kept_blobs_exist(destination: Path) -> bool:
    return all(
        (destination / "blobs" / key[:2] / key[2:4] / key).exists()
        for backup in backups_in(destination)
        for key, _size in json.loads((backup / "manifest.json").read_text())["blobs"]
    )


def test_prune_keeps_daily_weekly_monthly_and_the_blobs_they_need(tmp_path: Path) -> None:
    destination = tmp_path / "backups"
    fake_backups(destination, 90)  # 2026-01-01 .. 2026-03-31
    (destination / ".partial-20260331T040000000000Z").mkdir()  # an interrupted backup
    deleted, blobs = prune(destination, Retention(daily=7, weekly=4, monthly=3))
    days = sorted(b.name[:8] for b in backups_in(destination))
    assert days[-7:] == [f"202603{d:02d}" for d in range(25, 32)]  # the last 7 days
    # 4 ISO weeks, newest first: this week and the one before are covered by the dailies
    assert {"20260322", "20260315"} <= set(days)  # the newest backup of each older week
    assert {"20260131", "20260228"} <= set(days)  # month ends kept as monthly
    assert len(days) == 7 + 2 + 2 and len(deleted) == 90 - len(days)
    assert blobs == len(deleted)  # each deleted backup's own blob; the shared one stays
    assert kept_blobs_exist(destination)
    assert not list(destination.glob(".partial-*"))


def test_prune_command_takes_the_policy_from_options(tmp_path: Path) -> None:
    destination = tmp_path / "backups"
    fake_backups(destination, 20)
    result = klinika(
        tmp_path / "no-installation",
        "backup",
        "prune",
        str(destination),
        "--keep-daily",
        "2",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "deleted 18 backup(s) and 18 unreferenced blob(s)" in result.stdout
    assert [b.name[:8] for b in backups_in(destination)] == ["20260120", "20260119"]
    assert kept_blobs_exist(destination)
