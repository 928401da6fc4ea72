"""Logs of real processes: JSON lines with request and association ids, user and status, no
patient data; size rotation; one file per process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, start_server
from tests.dicomweb.conftest import multipart_body
from tests.factories import make_instance
from tests.observability.conftest import json_lines, server_log, wait_for_line

SECRET_NAME = "Zyxwvut^Secretname"


def test_serve_writes_json_access_lines_with_ids_user_and_status_and_no_patient_data(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path / "data", {"KLINIKA_LOG_FORMAT": "json", "KLINIKA_TRUSTED_PROXIES": "127.0.0.1"}
    )
    try:
        # a trusted proxy's (here loopback's) request id is kept and echoed
        given = requests.get(
            server.url + "/health", headers={"X-Request-ID": "proxy-trace-42"}, timeout=10
        )
        assert given.headers["X-Request-ID"] == "proxy-trace-42"
        instance = make_instance(PatientName=SECRET_NAME)
        body, content_type = multipart_body([instance])
        stored = requests.post(
            server.dicomweb + "/studies",
            data=body,
            headers={"Content-Type": content_type, **server.headers},
            timeout=30,
        )
        assert stored.status_code == 200, stored.text
        found = requests.get(
            server.dicomweb + "/studies",
            params={"PatientName": "Zyxwvut*"},
            headers=server.headers,
            timeout=30,
        )
        assert found.status_code == 200 and len(found.json()) == 1
        generated = found.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        denied = requests.get(server.dicomweb + "/studies", timeout=10)
        assert denied.status_code == 401

        log = server_log(server)
        query = wait_for_line(log, lambda line: line.get("request_id") == generated)
        assert query["logger"] == "klinika.access.http"
        assert query["method"] == "GET" and query["status"] == 200
        assert query["route"] == "/dicom-web/studies" and query["path"] == "/dicom-web/studies"
        assert query["user"] == "tester" and query["client"] == "127.0.0.1"
        assert query["duration_ms"] > 0
        proxied = wait_for_line(log, lambda line: line.get("request_id") == "proxy-trace-42")
        assert proxied["route"] == "/health" and proxied["user"] is None
        anonymous = wait_for_line(
            log,
            lambda line: line.get("status") == 401 and line.get("path") == "/dicom-web/studies",
        )
        assert anonymous["user"] is None
        stow = wait_for_line(
            log, lambda line: line.get("method") == "POST" and line["path"].startswith("/dicom")
        )
        assert stow["route"] == "/dicom-web/studies" and stow["status"] == 200
        assert stow["user"] == "tester"
        login = wait_for_line(log, lambda line: line.get("route") == "/api/auth/login")
        assert login["status"] == 200 and login["method"] == "POST"
        lines = json_lines(log)  # every line of the process is JSON, startup included
        assert {"ts", "level", "logger", "message", "pid"} <= set(lines[0])
        text = log.read_text(encoding="utf-8")
        assert "Zyxwvut" not in text and "Secretname" not in text
    finally:
        server.stop()


def test_dimse_associations_are_logged_with_their_id_ae_and_statuses(tmp_path: Path) -> None:
    dimse_port = free_port()
    server = start_server(
        tmp_path / "data",
        {"KLINIKA_LOG_FORMAT": "json", "KLINIKA_DIMSE_PORT": str(dimse_port)},
    )
    try:
        good = tmp_path / "good.dcm"
        good.write_bytes(make_instance(PatientName=SECRET_NAME))
        bad = tmp_path / "bad.dcm"  # a malformed Study Instance UID: refused by the archive
        with pytest.warns(UserWarning, match="Invalid value for VR UI"):
            bad.write_bytes(make_instance(PatientName=SECRET_NAME, StudyInstanceUID="not a uid"))
        subprocess.run(
            [
                "storescu",
                "-aet",
                "MODALITY1",
                "-aec",
                "KLINIKA",
                "127.0.0.1",
                str(dimse_port),
                str(good),
                str(bad),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        log = server_log(server)
        line = wait_for_line(
            log,
            lambda line: (
                line.get("logger") == "klinika.access.dimse" and line.get("result") == "accepted"
            ),
        )
        assert re.fullmatch(r"[0-9a-f]{12}", line["association_id"])
        assert line["calling_ae"] == "MODALITY1" and line["user"] == "MODALITY1"
        assert line["called_ae"] == "KLINIKA"
        assert line["operations"] == {"C-STORE": {"failure": 1, "success": 1}}
        failed = wait_for_line(log, lambda line: line.get("operation") == "C-STORE")
        assert failed["level"] == "warning"
        assert failed["association_id"] == line["association_id"]
        assert failed["status"].startswith("0x")
        text = log.read_text(encoding="utf-8")
        assert "Zyxwvut" not in text and "Secretname" not in text
    finally:
        server.stop()


def test_log_files_rotate_by_size_and_each_process_writes_its_own(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    server = start_server(
        tmp_path / "data",
        {
            "KLINIKA_LOG_FORMAT": "json",
            "KLINIKA_LOG_FILE": str(logs / "klinika.log"),
            "KLINIKA_LOG_MAX_BYTES": "4096",
            "KLINIKA_LOG_BACKUPS": "3",
            # no trusted proxy (the default): a client's request id is replaced
        },
    )
    dimse = None
    try:
        for _ in range(60):
            response = requests.get(
                server.url + "/health", headers={"X-Request-ID": "forged-id"}, timeout=10
            )
            assert response.headers["X-Request-ID"] != "forged-id"
        # a second process on the same log file takes the next slot
        dimse = subprocess.Popen(
            [sys.executable, "-m", "klinika", "dimse"],
            env={**server.env, "KLINIKA_DIMSE_PORT": str(free_port())},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        second = logs / "klinika-1.log"
        deadline = time.monotonic() + 30
        while not (second.exists() and "listening" in second.read_text()):
            assert dimse.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        if dimse is not None:
            dimse.terminate()
            dimse.wait(timeout=30)
        server.stop()
    rotated = sorted(p.name for p in logs.glob("klinika.log.*") if not p.name.endswith(".lock"))
    assert rotated == ["klinika.log.1", "klinika.log.2", "klinika.log.3"]
    files = [logs / "klinika.log", *(logs / name for name in rotated)]
    access = 0
    for path in files:
        assert path.stat().st_size <= 4096, path  # a line never straddles a rotation
        for line in json_lines(path):  # and every line is whole
            assert line["pid"] == server.process.pid
            access += line["logger"] == "klinika.access.http"
            assert line.get("request_id") != "forged-id"
    assert 0 < access <= 60  # the oldest lines were rotated out (3 backups kept)
    assert all("DIMSE" not in line["message"] for path in files for line in json_lines(path))
    assert os.path.exists(logs / "klinika-1.log.lock")
