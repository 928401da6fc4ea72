"""Metrics scraped from real processes and parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import add_user, free_port, start_server
from tests.dicomweb.conftest import multipart_body
from tests.factories import make_instance
from tests.observability.conftest import METRICS_TOKEN, bearer, json_lines, scrape, value


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, "the server exited"
        try:
            if requests.get(url + "/health/ready", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.3)


def test_two_workers_metrics_are_added_up_on_the_metrics_port_and_behind_the_token(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    add_user(data, "tester", "admin")
    http_port, metrics_port = free_port(), free_port()
    logs = tmp_path / "logs"
    env = {
        **os.environ,
        "KLINIKA_DATA_DIR": str(data),
        "KLINIKA_HTTP_PORT": str(http_port),
        "KLINIKA_METRICS_PORT": str(metrics_port),
        "KLINIKA_METRICS_TOKEN": METRICS_TOKEN,
        "KLINIKA_LOG_FORMAT": "json",
        "KLINIKA_LOG_FILE": str(logs / "klinika.log"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "klinika", "serve", "--workers", "2", "--no-dimse"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(url, process)
        for _ in range(40):
            assert requests.get(url + "/health", timeout=10).status_code == 200
        for _ in range(3):
            failed = requests.post(
                url + "/api/auth/login",
                json={"username": "tester", "password": "not-the-password"},
                timeout=30,
            )
            assert failed.status_code == 401

        own_port = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert value(own_port, "klinika_http_requests_total", route="/health", status="200") == 40
        assert value(own_port, "klinika_login_failures_total", reason="rejected") == 3
        assert value(own_port, "klinika_http_request_duration_seconds_count", route="/health") == 40
        assert value(own_port, "klinika_storage_free_bytes") > 0
        assert value(own_port, "klinika_index_size_bytes") > 0
        assert value(own_port, "klinika_backup_configured") == 0
        assert value(own_port, "klinika_db_pool_size") > 0  # each worker's pools, added up

        # the main port: only with the token, and any worker answers with everyone's counts
        assert requests.get(url + "/metrics", timeout=10).status_code == 401
        assert (
            requests.get(url + "/metrics", headers=bearer("x" * 40), timeout=10).status_code == 401
        )
        main_port = scrape(url + "/metrics", bearer())
        assert value(main_port, "klinika_http_requests_total", route="/health") == 40

        # the parent and two workers each wrote their own metric files
        files = list((data / "run" / "metrics").glob("*.db"))
        pids = {int(f.stem.rsplit("_", 1)[1]) for f in files}
        assert len(pids - {process.pid}) >= 2, files
    finally:
        process.terminate()
        process.wait(timeout=60)
    # and their own log files, each line whole
    names = sorted(p.name for p in logs.glob("klinika*.log"))
    assert names == ["klinika-1.log", "klinika-2.log", "klinika.log"]
    access_pids = {
        line["pid"]
        for name in names
        for line in json_lines(logs / name)
        if line["logger"] == "klinika.access.http"
    }
    assert access_pids and process.pid not in access_pids  # the workers serve, not the parent


def test_dimse_associations_operations_and_ingest_are_counted(tmp_path: Path) -> None:
    dimse_port = free_port()
    server = start_server(
        tmp_path / "data",
        {
            "KLINIKA_METRICS_TOKEN": METRICS_TOKEN,
            "KLINIKA_DIMSE_PORT": str(dimse_port),
            "KLINIKA_MODALITIES": "MODALITY1@127.0.0.1:11112",
            "KLINIKA_DIMSE_STRICT": "true",
        },
    )
    try:
        study = "1.2.826.0.1.3680043.99.4242"
        files = []
        for n in range(2):
            path = tmp_path / f"ct{n}.dcm"
            path.write_bytes(make_instance(study_uid=study, series_uid=study + ".1"))
            files.append(str(path))
        stored = subprocess.run(
            [
                "storescu",
                "-aet",
                "MODALITY1",
                "-aec",
                "KLINIKA",
                "127.0.0.1",
                str(dimse_port),
                *files,
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert stored.returncode == 0, stored.stderr
        refused = subprocess.run(
            ["echoscu", "-aet", "STRANGER", "-aec", "KLINIKA", "127.0.0.1", str(dimse_port)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0
        stow = [make_instance(study_uid=study, series_uid=study + ".2") for _ in range(3)]
        body, content_type = multipart_body(stow)
        response = requests.post(
            server.dicomweb + "/studies",
            data=body,
            headers={"Content-Type": content_type, **server.headers},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        series = requests.get(
            f"{server.dicomweb}/studies/{study}/series", headers=server.headers, timeout=30
        )
        assert series.status_code == 200

        deadline = time.monotonic() + 15
        while True:  # an association is counted when its connection closes, just after
            samples = scrape(server.url + "/metrics", bearer())
            closed = value(samples, "klinika_dimse_associations_total", result="rejected")
            if closed == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert value(samples, "klinika_dimse_associations_total", result="accepted") == 1
        assert value(samples, "klinika_dimse_associations_total", result="rejected") == 1
        assert value(samples, "klinika_dimse_associations_active") == 0
        assert (
            value(samples, "klinika_dimse_operations_total", operation="C-STORE", status="success")
            == 2
        )
        assert (
            value(samples, "klinika_dimse_operation_duration_seconds_count", operation="C-STORE")
            == 2
        )
        assert value(samples, "klinika_ingest_instances_total", outcome="stored") == 5
        ingested = value(samples, "klinika_ingest_bytes_total")
        assert ingested > sum(len(item) for item in stow)
        assert ingested == value(samples, "klinika_archive_stored_bytes")
        template = "/dicom-web/studies/{study_uid}/series"
        assert value(samples, "klinika_http_requests_total", route=template, status="200") == 1
        labels = {v for (_name, have), _v in samples.items() for _k, v in have}
        assert not any(study in label for label in labels)  # route templates, never UIDs
    finally:
        server.stop()
