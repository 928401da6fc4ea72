"""deploy/monitoring: the alert rules (promtool, when Debian's prometheus package is
installed), the Grafana dashboard, and that both only use metrics Klinika exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from klinika.config import load_settings
from klinika.observability import metrics_registry, render_metrics
from klinika.runtime import Runtime
from klinika.web.telemetry import install_state_probes

MONITORING = Path(__file__).parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "klinika-alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
#: Series Prometheus itself provides.
PROMETHEUS_OWN = {"up"}
#: The issue's alerts, by the metric each must watch.
REQUIRED_ALERTS = {
    "KlinikaBackupOlderThanRPO": "klinika_backup_age_seconds",
    "KlinikaDiskAlmostFull": "klinika_storage_free_bytes",
    "KlinikaAuditChainBroken": "klinika_audit_chain_ok",
    "KlinikaHttpErrorRate": "klinika_http_requests_total",
    "KlinikaLoginFailureSpike": "klinika_login_failures_total",
}


def _needs_promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    return promtool


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name a scrape of a fresh installation can show, from a real exposition
    (labelled metrics appear once used, so the families' names are taken with their suffixes)."""
    settings = load_settings(env={}, data_dir=tmp_path / "data", backup_dir=tmp_path / "b")
    with Runtime(settings) as runtime:
        install_state_probes(
            runtime.metrics,
            settings,
            database=runtime.database,
            blobs=runtime.blobs,
            archive=runtime.archive,
            audit=runtime.audit,
        )
        runtime.audit.record(runtime_actor(), "audit:verify", "success", details={})
        runtime.audit.record(runtime_actor(), "backup:verify", "success", details={})
        runtime.audit.record(runtime_actor(), "backup:drill", "success", details={"seconds": 1})
        text = render_metrics(metrics_registry(runtime.metrics))[0].decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
        }.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


def runtime_actor():  # type: ignore[no-untyped-def]
    from klinika.audit import Actor

    return Actor.system()


def metric_names(expression: str) -> set[str]:
    """The series names an expression reads (identifiers outside label matchers and strings,
    minus PromQL's own words)."""
    stripped = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", expression)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped))
    promql = {
        "sum",
        "max",
        "min",
        "avg",
        "by",
        "on",
        "and",
        "or",
        "unless",
        "rate",
        "increase",
        "histogram_quantile",
        "time",
        "le",
        "route",
        "instance",
        "reason",
        "engine",
        "operation",
        "status",
        "result",
        "without",
        "ignoring",
        "count",
    }
    return {w for w in words if w not in promql and not w.isdigit()}


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    promtool = _needs_promtool()
    for command in (
        ["check", "rules", str(RULES)],
        ["test", "rules", str(MONITORING / "klinika-alerts.test.yml")],
    ):
        result = subprocess.run(
            [promtool, *command], capture_output=True, text=True, check=False, cwd=MONITORING
        )
        assert result.returncode == 0, result.stdout + result.stderr
    config = subprocess.run(
        [promtool, "check", "config", str(MONITORING / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=MONITORING,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_rules_cover_the_issue_and_read_only_metrics_we_export(tmp_path: Path) -> None:
    document = yaml.safe_load(RULES.read_text())
    rules = {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}
    for alert, metric in REQUIRED_ALERTS.items():
        assert metric in metric_names(rules[alert]["expr"]), alert
    known = exported_names(tmp_path) | PROMETHEUS_OWN
    for alert, rule in rules.items():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{alert} reads {unknown}, which Klinika does not export"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]


def test_the_dashboard_is_grafana_json_on_metrics_we_export(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "Klinika PACS"
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 12
    known = exported_names(tmp_path)
    used: set[str] = set()
    for expression in expressions:
        names = metric_names(expression)
        assert names <= known, (expression, names - known)
        used |= names
    for wanted in (
        "klinika_backup_age_seconds",
        "klinika_dimse_operations_total",
        "klinika_http_request_duration_seconds_bucket",
        "klinika_ingest_bytes_total",
        "klinika_audit_queue_depth",
        "klinika_db_connections_in_use",
        "klinika_index_size_bytes",
        "klinika_login_failures_total",
    ):
        assert wanted in used, wanted
