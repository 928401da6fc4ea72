"""DICOM nodes added in the console, against real peers: DCMTK's findscu and movescu on our
SCP (two DIMSE worker processes, no restart), storescp as a Send to… target and C-MOVE
destination, C-ECHO tests from the nodes page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pydicom.uid import generate_uid

from tests.conftest import (
    LiveServer,
    create_users,
    free_port,
    login,
    port_open,
    start_server,
    wait_until,
)
from tests.dicomweb.conftest import stow
from tests.dimse.conftest import DCMTK_ENV
from tests.factories import make_instance


@dataclass
class Site:
    server: LiveServer
    port: int
    store_dir: Path
    store_port: int
    study_uid: str

    def post(
        self, path: str, headers: dict[str, str] | None = None, **data: str
    ) -> requests.Response:
        return requests.post(
            self.server.url + path,
            data=data,
            headers=headers or self.server.headers,
            timeout=60,
            allow_redirects=False,
        )

    def findscu(self, aet: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "findscu",
                "-S",
                "-aet",
                aet,
                "-aec",
                "KLINIKA",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={self.study_uid}",
                "-k",
                "PatientName",
                "127.0.0.1",
                str(self.port),
            ],
            capture_output=True,
            text=True,
            env=DCMTK_ENV,
            timeout=120,
            check=False,
        )

    def node_id(self, title: str) -> int:
        page = requests.get(self.server.url + "/admin/nodes", headers=self.server.headers).text
        found = re.search(f'data-node="{title}" data-node-id="([0-9]+)"', page)
        assert found, page
        return int(found.group(1))

    def wait_for_job(self, job_id: int) -> dict:
        def finished() -> dict | None:
            job = requests.get(
                f"{self.server.url}/api/jobs/{job_id}", headers=self.server.headers, timeout=30
            ).json()
            return job if job["state"] not in ("queued", "running") else None

        return wait_until(finished, 120, message=f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("nodes")
    store_dir = root / "received"
    store_dir.mkdir()
    store_port = free_port()
    receiver = subprocess.Popen(
        ["storescp", "-aet", "NODESCP", "-od", str(store_dir), str(store_port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = start_server(
        root / "data",
        {"KLINIKA_DIMSE_WORKERS": "2", "KLINIKA_DIMSE_STRICT": "true"},
        users={"irina": "doctor", "olga": "operator"},
    )
    wait_until(lambda: port_open(store_port), 30, message="storescp did not listen")
    study_uid = generate_uid()
    series = generate_uid()
    files = [
        make_instance(study_uid=study_uid, series_uid=series, PatientName="Nodes^Test")
        for _ in range(3)
    ]
    assert stow(server, files).status_code == 200
    yield Site(server, int(server.env["KLINIKA_DIMSE_PORT"]), store_dir, store_port, study_uid)
    server.stop()
    receiver.terminate()
    receiver.wait(timeout=10)


def test_a_node_added_in_the_console_is_admitted_by_every_dimse_process_without_restart(
    site: Site,
) -> None:
    assert site.findscu("CONSOLESCU").returncode != 0  # strict: unknown AE, rejected
    added = site.post(
        "/admin/nodes",
        title="CONSOLESCU",
        host="127.0.0.1",
        port="11112",
        service_echo="on",
        service_find="on",
        service_move="on",
        description="Workstation 3",
    )
    assert added.status_code == 303, added.text

    def found() -> bool:
        result = site.findscu("CONSOLESCU")
        return result.returncode == 0 and "Nodes^Test" in result.stdout + result.stderr

    # within the registry's cache time (5 s) every worker process admits it: several
    # associations in a row, which both processes take turns accepting, all succeed
    wait_until(
        lambda: all(found() for _ in range(6)), 60, message="the console's node was not admitted"
    )
    page = requests.get(site.server.url + "/admin/nodes", headers=site.server.headers).text
    assert "Workstation 3" in page
    events = requests.get(
        site.server.url + "/api/audit?action=node:create", headers=site.server.headers
    ).json()
    assert any(e["details"].get("title") == "CONSOLESCU" for e in events["events"])


def test_removing_a_node_refuses_it_again(site: Site) -> None:
    assert (
        site.post(
            "/admin/nodes", title="GONESCU", host="127.0.0.1", port="11113", service_find="on"
        ).status_code
        == 303
    )
    wait_until(lambda: site.findscu("GONESCU").returncode == 0, 60, message="not admitted")
    assert site.post(f"/admin/nodes/{site.node_id('GONESCU')}/delete").status_code == 303
    wait_until(lambda: site.findscu("GONESCU").returncode != 0, 60, message="still admitted")


def test_echo_test_reports_success_with_the_round_trip_and_failure(site: Site) -> None:
    site.post("/admin/nodes", title="NODESCP", host="127.0.0.1", port=str(site.store_port))
    page = site.post("/admin/nodes/test", title="NODESCP")
    assert page.status_code == 200
    assert "C-ECHO to NODESCP succeeded in" in page.text
    site.post("/admin/nodes", title="NOBODY", host="127.0.0.1", port=str(free_port()))
    page = site.post("/admin/nodes/test", title="NOBODY")
    assert "C-ECHO to NOBODY failed after" in page.text


def test_send_to_a_node_runs_as_a_job_and_storescp_receives_the_study(site: Site) -> None:
    site.post("/admin/nodes", title="NODESCP", host="127.0.0.1", port=str(site.store_port))
    before = len(list(site.store_dir.iterdir()))
    doctor = login(site.server.url, "irina")  # doctors may send (dicom:send)
    answer = site.post(f"/send/studies/{site.study_uid}", headers=doctor, node="NODESCP")
    assert answer.status_code == 303, answer.text
    job_id = int(answer.headers["location"].split("started=")[1])
    job = site.wait_for_job(job_id)
    assert job["state"] == "done", job
    assert (job["done"], job["failed"], job["total"]) == (3, 0, 3)
    assert len(list(site.store_dir.iterdir())) == before + 3
    jobs_page = requests.get(site.server.url + "/jobs", headers=doctor).text
    assert "3 of 3" in jobs_page and "Done: 3 sent, 0 failed" in jobs_page
    events = requests.get(
        site.server.url + "/api/audit?action=dicom:send", headers=site.server.headers
    ).json()["events"]
    events = [e for e in events if e["details"].get("job") == job_id]  # other tests send too
    assert {e["details"]["phase"] for e in events} == {"started", "finished"}
    assert {e["outcome"] for e in events} == {"success"}
    assert all(e["patient_id"] for e in events)


def test_a_console_node_is_a_c_move_destination(site: Site) -> None:
    site.post("/admin/nodes", title="MOVER", host="127.0.0.1", port="11114", service_move="on")
    site.post("/admin/nodes", title="NODESCP", host="127.0.0.1", port=str(site.store_port))
    study_uid = generate_uid()  # storescp names files by SOP Instance UID: new instances
    assert stow(site.server, [make_instance(study_uid=study_uid) for _ in range(3)]).ok
    before = len(list(site.store_dir.iterdir()))

    def moved() -> bool:
        subprocess.run(
            [
                "movescu",
                "-S",
                "-aet",
                "MOVER",
                "-aec",
                "KLINIKA",
                "-aem",
                "NODESCP",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={study_uid}",
                "127.0.0.1",
                str(site.port),
            ],
            capture_output=True,
            text=True,
            env=DCMTK_ENV,
            timeout=120,
            check=False,
        )
        return len(list(site.store_dir.iterdir())) >= before + 3

    wait_until(moved, 90, message="the C-MOVE to the console's node did not arrive")


def test_who_may_manage_nodes_send_and_retrieve(site: Site) -> None:
    doctor, operator = login(site.server.url, "irina"), login(site.server.url, "olga")
    for headers in (doctor, operator):
        assert requests.get(site.server.url + "/admin/nodes", headers=headers).status_code == 403
        refused = site.post("/admin/nodes", headers=headers, title="X", host="h", port="1")
        assert refused.status_code == 403
    assert requests.get(site.server.url + "/retrieve", headers=doctor).status_code == 403
    assert requests.get(site.server.url + "/retrieve", headers=operator).status_code == 200
    assert requests.get(site.server.url + "/jobs", headers=operator).status_code == 200


def test_a_bad_node_is_refused_with_the_reason(site: Site) -> None:
    page = site.post("/admin/nodes", title="A\\B", host="127.0.0.1", port="104")
    assert page.status_code == 400 and "backslash" in page.text
    page = site.post("/admin/nodes", title="OK", host="127.0.0.1", port="70000")
    assert page.status_code == 400 and "65535" in page.text
    assert 'value="OK"' in page.text and 'value="70000"' in page.text  # kept to correct


ORTHANC_SCRIPT = Path(__file__).with_name("orthanc_nodes.py")


@pytest.mark.skipif(shutil.which("Orthanc") is None, reason="Orthanc is not installed")
def test_orthanc_as_remote_pacs_from_the_console_in_chromium() -> None:
    isolate = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    result = subprocess.run(
        [*isolate, sys.executable, str(ORTHANC_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=Path(__file__).parents[2],
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "FAIL" not in result.stdout
    assert result.stdout.count("ok  ") == 12, result.stdout


def test_a_job_running_when_the_server_stopped_shows_as_interrupted(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from klinika.config import Settings
    from klinika.dimse.schema import dimse_jobs
    from klinika.runtime import Runtime

    data_dir = tmp_path / "data"
    create_users(data_dir, {"tester": "admin"})
    with Runtime(Settings(data_dir=data_dir, password_hash_profile="test")) as runtime:
        job = sa.insert(dimse_jobs).values(
            kind="send",
            node="FAR",
            state="running",
            total=10,
            done=4,
            target={"study_uid": "1.2.3"},
            created_by="tester",
            created_at=1,
        )
        with runtime.database.writer.begin() as connection:
            connection.execute(job)
    server = start_server(data_dir)
    try:
        jobs = requests.get(server.url + "/api/jobs", headers=server.headers, timeout=30).json()
        assert [(j["state"], j["done"], j["total"]) for j in jobs] == [("interrupted", 4, 10)]
        page = requests.get(server.url + "/jobs", headers=server.headers, timeout=30).text
        assert "Interrupted: the server stopped while this job ran" in page
        assert "4 of 10" in page
    finally:
        server.stop()


def test_the_cli_finds_a_console_node_by_its_title(site: Site) -> None:
    site.post("/admin/nodes", title="NODESCP", host="127.0.0.1", port=str(site.store_port))
    result = subprocess.run(
        [sys.executable, "-m", "klinika", "echo", "NODESCP"],
        env=site.server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "klinika", "echo", "NOSUCHNODE"],
        env=site.server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unknown.returncode != 0 and "not a known DICOM node" in unknown.stderr


def test_send_one_series_of_a_study_and_a_send_to_an_unreachable_node_fails(site: Site) -> None:
    site.post("/admin/nodes", title="NODESCP", host="127.0.0.1", port=str(site.store_port))
    study_uid, chosen, other = generate_uid(), generate_uid(), generate_uid()
    files = [make_instance(study_uid=study_uid, series_uid=chosen) for _ in range(2)]
    files += [make_instance(study_uid=study_uid, series_uid=other) for _ in range(3)]
    assert stow(site.server, files).ok
    form = requests.get(
        f"{site.server.url}/send/studies/{study_uid}", headers=site.server.headers, timeout=30
    ).text
    assert chosen in form and other in form  # one checkbox per series
    answer = requests.post(
        f"{site.server.url}/send/studies/{study_uid}",
        data={"node": "NODESCP", "series": chosen},
        headers=site.server.headers,
        allow_redirects=False,
        timeout=30,
    )
    job = site.wait_for_job(int(answer.headers["location"].split("started=")[1]))
    assert (job["state"], job["done"], job["total"]) == ("done", 2, 2)
    assert job["target"]["series_uids"] == [chosen]

    site.post("/admin/nodes", title="NOBODY", host="127.0.0.1", port=str(free_port()))
    answer = site.post(f"/send/studies/{study_uid}", node="NOBODY")
    job = site.wait_for_job(int(answer.headers["location"].split("started=")[1]))
    assert job["state"] == "failed" and "refused the association" in job["message"], job
    page = requests.get(site.server.url + "/jobs", headers=site.server.headers).text
    assert "Failed:" in page


def test_every_dimse_service_has_a_label_on_the_nodes_page() -> None:
    from klinika.config import DIMSE_SERVICES
    from klinika.web.pages.nodes import SERVICE_LABELS

    assert set(SERVICE_LABELS) == set(DIMSE_SERVICES)
