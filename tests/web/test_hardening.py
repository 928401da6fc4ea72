"""Hardening (issue 14, findings 7 and 9): ``Cache-Control: no-store`` on every response with
patient or account data (immutable pixel data excepted), a private data folder, and an audit
CSV that a spreadsheet cannot turn into a formula."""

from __future__ import annotations

import csv
import io
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import PYDICOM_DATA, LiveServer, start_server
from tests.dicomweb.conftest import stow

CT = PYDICOM_DATA / "CT_small.dcm"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("hardening") / "data")
    assert stow(live, [CT.read_bytes()]).status_code == 200
    yield live
    live.stop()


def get(server: LiveServer, path: str, **headers: str) -> requests.Response:
    answer = requests.get(server.url + path, headers={**server.headers, **headers}, timeout=60)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
    return answer


def test_responses_with_patient_or_account_data_are_never_stored(server: LiveServer) -> None:
    study = get(server, "/dicom-web/studies").json()[0]["0020000D"]["Value"][0]
    series = get(server, f"/dicom-web/studies/{study}/series").json()[0]["0020000E"]["Value"][0]
    draft = requests.put(
        f"{server.url}/api/studies/{study}/report",
        json={"revision": None, "sections": {"findings": "No acute findings."}},
        headers=server.headers,
        timeout=60,
    )
    assert draft.status_code == 200, draft.text
    html = {"Accept": "text/html"}
    for path, headers in [
        ("/dicom-web/studies", {}),
        (f"/dicom-web/studies/{study}/series", {}),
        (f"/dicom-web/studies/{study}/metadata", {}),
        (f"/dicom-web/studies/{study}/series/{series}/metadata", {}),
        (f"/api/studies/{study}/report", {}),
        (f"/api/studies/{study}/report/versions", {}),
        ("/api/users", {}),
        ("/api/sessions", {}),
        ("/api/audit", {}),
        ("/api/audit/export", {}),
        ("/api/auth/me", {}),
        ("/worklist", html),
        ("/admin/users", html),
        ("/admin/audit", html),
    ]:
        answer = get(server, path, **headers)
        assert answer.headers.get("cache-control") == "no-store", path


def test_pixel_data_may_be_kept_privately_and_static_files_are_not_no_store(
    server: LiveServer,
) -> None:
    item = get(server, "/dicom-web/instances").json()[0]
    study, series, sop = (item[t]["Value"][0] for t in ("0020000D", "0020000E", "00080018"))
    frames = get(
        server,
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1",
        Accept='multipart/related; type="application/octet-stream"',
    )
    assert frames.headers["cache-control"].startswith("private, max-age")
    css = requests.get(server.url + "/static/klinika.css", timeout=30)
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_is_private_to_the_service(server: LiveServer) -> None:
    data = server.data_dir
    assert mode(data) == 0o700
    database = sorted(data.glob("index.sqlite*"))
    assert {p.name for p in database} >= {"index.sqlite", "index.sqlite-wal"}
    for path in database:
        assert mode(path) == 0o600, path
    blobs = [p for p in (data / "blobs").rglob("*") if p.is_file()]
    assert blobs
    for path in blobs:
        assert mode(path) == 0o600, path
    for folder in [p for p in (data / "blobs").rglob("*") if p.is_dir()]:
        assert mode(folder) & 0o077 == 0, folder
    secrets = list((data / "secrets").iterdir())
    assert secrets and all(mode(p) == 0o600 for p in secrets)


def test_an_older_world_readable_database_is_narrowed_at_start(tmp_path: Path) -> None:
    from klinika.runtime import secure_data_dir

    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "index.sqlite").write_bytes(b"")
    (data / "index.sqlite").chmod(0o644)
    secure_data_dir(data)
    assert mode(data) == 0o700 and mode(data / "index.sqlite") == 0o600


def test_the_audit_csv_escapes_cells_a_spreadsheet_would_run(server: LiveServer) -> None:
    for name in ('=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx"):
        requests.post(
            server.url + "/api/auth/login",
            json={"username": name, "password": "wrong-password-1"},
            timeout=30,
        )
    text = get(server, "/api/audit/export", **{"Accept": "text/csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    actors = [row["actor"] for row in rows if row["action"] == "auth:login"]
    dangerous = [a for a in actors if a[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not dangerous, dangerous
    assert '\'=hyperlink("http://evil","x")' in actors or any(a.startswith("'=") for a in actors)


def _upgrade_to_websocket(server: LiveServer, path: str, cookie: str) -> bytes:
    """Send a WebSocket handshake (with a valid session) and return the status line."""
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request.encode())
        return connection.recv(4096).split(b"\r\n", 1)[0]


def test_websocket_handshakes_are_refused_even_with_a_session(server: LiveServer) -> None:
    token = server.headers["Authorization"].removeprefix("Bearer ")
    status = _upgrade_to_websocket(server, "/dicom-web/studies", f"klinika_session={token}")
    assert b" 403 " in status + b" ", status
