"""The backup promise, measured: readiness and the alert turn red on a stale backup, the
scheduler verifies backups and the audit chain, the restore drill reports its RTO."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from klinika.audit import AuditFilter
from klinika.backup.manifest import STAMP_FORMAT
from klinika.backup.schedule import backup_status, run_checks
from klinika.backup.snapshot import create_backup
from klinika.config import load_settings
from klinika.storage import open_blob_store
from tests.backup.conftest import klinika, runtime_of, the_backup
from tests.conftest import add_user, start_server
from tests.observability.conftest import METRICS_TOKEN, bearer, scrape, value

RULES = Path(__file__).parents[2] / "deploy" / "monitoring" / "klinika-alerts.yml"


def _age(backup: Path, hours: float) -> Path:
    """Rename a backup as if it had been taken ``hours`` ago."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    older = backup.with_name(when.strftime(STAMP_FORMAT))
    backup.rename(older)
    return older


def _alert_fires(age: float, rpo: float, tmp_path: Path) -> bool:
    """Whether KlinikaBackupOlderThanRPO fires on these scraped values: ``promtool test
    rules`` with the repository's rule file when promtool is installed (the test expects no
    alert, so it fails exactly when the alert fires), else the rule's comparison."""
    if shutil.which("promtool") is None:
        return age > rpo
    series = [
        {"series": 'klinika_backup_age_seconds{job="klinika"}', "values": f"{age}+60x15"},
        {"series": 'klinika_backup_rpo_seconds{job="klinika"}', "values": f"{rpo}x15"},
    ]
    expect_none = [{"eval_time": "10m", "alertname": "KlinikaBackupOlderThanRPO", "exp_alerts": []}]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": expect_none}],
    }
    path = tmp_path / "backup-alert.test.yml"
    path.write_text(json.dumps(test))  # YAML is a superset of JSON
    result = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return False
    assert 'alertname="KlinikaBackupOlderThanRPO"' in output, output  # failed for that reason
    return True


def test_a_stale_backup_turns_readiness_degraded_the_admin_page_and_the_alert_red(
    loaded: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "backups"
    assert klinika(loaded, "backup", str(destination)).returncode == 0
    _age(the_backup(destination), hours=3)
    add_user(loaded, "tester", "admin")
    server = start_server(
        loaded,
        {
            "KLINIKA_BACKUP_DIR": str(destination),
            "KLINIKA_BACKUP_INTERVAL_MINUTES": "0",  # monitor only: no backup at start
            "KLINIKA_METRICS_TOKEN": METRICS_TOKEN,
        },
    )
    try:
        ready = requests.get(server.url + "/health/ready", timeout=10)
        assert ready.status_code == 200  # still serving: degraded is for people, not balancers
        body = ready.json()
        assert body["status"] == "degraded" and body["database"] == "ok"
        assert body["backup"] == "stale: the newest backup is 3.0 h old (RPO 60 min)"
        samples = scrape(server.url + "/metrics", bearer())
        age, rpo = (
            value(samples, "klinika_backup_age_seconds"),
            value(samples, "klinika_backup_rpo_seconds"),
        )
        assert value(samples, "klinika_backup_stale") == 1 and rpo == 3600
        assert 3 * 3600 - 60 < age < 3 * 3600 + 600
        assert _alert_fires(age, rpo, tmp_path)
        page = requests.get(server.url + "/admin/system", headers=server.headers, timeout=30)
        assert page.status_code == 200 and "older than the RPO" in page.text

        assert klinika(loaded, "backup", str(destination)).returncode == 0  # a fresh one
        ready = requests.get(server.url + "/health/ready", timeout=10).json()
        assert ready["status"] == "ok" and ready["backup"] == "ok"
        samples = scrape(server.url + "/metrics", bearer())
        assert value(samples, "klinika_backup_stale") == 0
        assert not _alert_fires(value(samples, "klinika_backup_age_seconds"), rpo, tmp_path)
        page = requests.get(server.url + "/admin/system", headers=server.headers, timeout=30)
        assert "older than the RPO" not in page.text

        deadline = time.monotonic() + 60  # the scheduler's first checks, right after start
        while value(samples, "klinika_audit_chain_ok") != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
            samples = scrape(server.url + "/metrics", bearer())
        assert value(samples, "klinika_audit_chain_ok") == 1
        assert value(samples, "klinika_backup_verify_ok") == 1
    finally:
        server.stop()


def test_the_restore_drill_restores_into_scratch_checks_and_reports_its_rto(
    loaded: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "backups"
    assert klinika(loaded, "backup", str(destination)).returncode == 0
    scratch = tmp_path / "scratch"
    result = klinika(
        loaded,
        "backup",
        "drill",
        str(destination),
        "--scratch",
        str(scratch),
        "--size",
        "1TB",
        "--json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    manifest = json.loads((the_backup(destination) / "manifest.json").read_text())
    assert report["ok"] and report["fsck_clean"] and report["audit_chain_ok"]
    assert report["instances"] == manifest["counts"]["instances"] > 10
    assert report["bytes"] == sum(size for _key, size in manifest["blobs"])
    assert report["seconds"] > 0
    assert report["rto_estimates_seconds"]["1TB"] > report["seconds"]
    assert not scratch.exists()  # the scratch installation is gone
    with runtime_of(loaded) as runtime:
        events, _ = runtime.audit.search(AuditFilter(action="backup:drill"))
    assert [e.outcome for e in events] == ["success"]
    assert json.loads(events[0].details)["seconds"] == report["seconds"]

    text = klinika(loaded, "backup", "drill", str(destination), "--size", "500GB")
    assert text.returncode == 0 and "RTO estimated for 500GB" in text.stdout
    damaged = next((destination / "blobs").glob("??/??/*"))
    damaged.write_bytes(b"not what was stored")
    refused = klinika(loaded, "backup", "drill", str(destination))
    assert refused.returncode != 0 and "not whole" in refused.stderr


def test_the_scheduler_verifies_the_newest_backup_monthly_and_the_chain_daily(
    loaded: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "backups"
    settings = load_settings(env={}, data_dir=loaded, backup_dir=destination)
    assert backup_status(settings).describe().startswith("stale: no backup in")
    blobs = open_blob_store(settings)
    try:
        create_backup(settings.database_url, blobs, destination)
    finally:
        blobs.close()
    assert backup_status(settings).describe() == "ok"
    assert load_settings(env={}, data_dir=loaded).backup_dir is None
    assert not backup_status(load_settings(env={}, data_dir=loaded)).stale

    def checks(runtime_audit) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
        found = []
        for action in ("backup:verify", "audit:verify"):
            events, _ = runtime_audit.search(AuditFilter(action=action), limit=100)
            found += [(action, e.outcome) for e in events]
        return sorted(found)

    now = dt.datetime.now(dt.UTC)
    with runtime_of(loaded) as runtime:
        run_checks(settings, runtime.audit, now)
        assert checks(runtime.audit) == [("audit:verify", "success"), ("backup:verify", "success")]
        run_checks(settings, runtime.audit, now + dt.timedelta(hours=1))  # nothing due
        assert len(checks(runtime.audit)) == 2
        run_checks(settings, runtime.audit, now + dt.timedelta(days=2))  # the chain is due
        assert checks(runtime.audit).count(("audit:verify", "success")) == 2
        assert checks(runtime.audit).count(("backup:verify", "success")) == 1
        next((destination / "blobs").glob("??/??/*")).write_bytes(b"bit rot")
        run_checks(settings, runtime.audit, now + dt.timedelta(days=31))  # a month later
        assert ("backup:verify", "failure") in checks(runtime.audit)
