"""The console against Orthanc as the remote PACS, in Chromium: add Orthanc as a DICOM node,
test it (C-ECHO), query it and retrieve a study (C-MOVE to us, then C-GET) that then appears
in the worklist, and send a study to it from the worklist, watching each job finish.

Runs inside a loopback-only network namespace (Orthanc 1.10 cannot bind to 127.0.0.1 alone);
started by test_nodes.py; prints one line per check and exits non-zero on the first failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import TEST_PASSWORD, free_port, start_server, wait_until
from tests.dicomweb.conftest import stow
from tests.factories import make_instance


def check(name: str, ok: object, detail: object = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)
    if not ok:
        sys.exit(1)


def study(patient_id: str, name: str, count: int = 3) -> tuple[str, list[bytes]]:
    uid, series = generate_uid(), generate_uid()
    files = [
        make_instance(study_uid=uid, series_uid=series, PatientID=patient_id, PatientName=name)
        for _ in range(count)
    ]
    return uid, files


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    root = Path(tempfile.mkdtemp(prefix="orthanc-nodes-"))
    orthanc_http, orthanc_dicom, klinika_dicom = free_port(), free_port(), free_port()
    config = {
        "Name": "nodes",
        "StorageDirectory": str(root / "orthanc"),
        "IndexDirectory": str(root / "orthanc"),
        "HttpPort": orthanc_http,
        "DicomPort": orthanc_dicom,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
        "DicomCheckModalityHost": True,
        # Orthanc answers C-FIND in its default repertoire (Latin-1 unless told): a Russian
        # site sets UTF-8
        "DefaultEncoding": "Utf8",
        # Orthanc must know our AE for a C-MOVE to us (and answers C-GET to known AEs)
        "DicomModalities": {"klinika": ["KLINIKA", "127.0.0.1", klinika_dicom]},
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    orthanc = subprocess.Popen(
        ["Orthanc", str(root / "orthanc.json")],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = start_server(
        root / "klinika",
        {"KLINIKA_DIMSE_PORT": str(klinika_dicom)},
        users={"olga": "operator"},
    )
    rest = f"http://127.0.0.1:{orthanc_http}"
    try:
        wait_until(
            lambda: requests.get(rest + "/system", timeout=1).ok,
            30,
            message="Orthanc did not answer",
            ignoring=(requests.RequestException,),
        )
        moved_uid, moved = study("REMOTE-1", "Петров^Иван")
        got_uid, got = study("REMOTE-2", "Remote^Get")
        for part10 in moved + got:
            requests.post(rest + "/instances", data=part10, timeout=10).raise_for_status()
        local_uid, local = study("LOCAL-1", "Local^Sent", 2)
        check("a study stored in Klinika", stow(server, local).status_code == 200)
        from playwright.sync_api import expect, sync_playwright

        expect.set_options(timeout=60_000)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_context(locale="en-US").new_page()
            console(page, server.url, rest, orthanc_dicom, moved_uid, local_uid, expect)
            german = browser.new_context(locale="de-DE").new_page()
            log_in(german, server.url, "tester", "/admin/nodes")
            german.goto(server.url + "/admin/nodes?lang=de")  # the admin's own language is en
            expect(german.get_by_role("link", name="DICOM-Knoten")).to_be_visible()
            row = german.locator('tr[data-node="ORTHANC"]')
            expect(row.get_by_role("button", name="Testen")).to_be_visible()
            expect(german.get_by_role("heading", name="Neuer Knoten")).to_be_visible()
            check("the nodes page in German", True)
            browser.close()

        # C-GET: the admin switches the node to C-GET; the operator's retrieve uses it
        headers = server.headers
        page_html = requests.get(server.url + "/admin/nodes", headers=headers).text
        node_id = re.search(r'data-node="ORTHANC" data-node-id="([0-9]+)"', page_html)
        assert node_id
        edited = requests.post(
            f"{server.url}/admin/nodes/{node_id.group(1)}",
            data={
                "title": "ORTHANC",
                "host": "127.0.0.1",
                "port": str(orthanc_dicom),
                "service_echo": "on",
                "service_store": "on",
                "retrieve": "get",
            },
            headers=headers,
            allow_redirects=False,
            timeout=30,
        )
        check("the node now retrieves with C-GET", edited.status_code == 303, edited.text[:300])
        operator = requests.post(
            server.url + "/api/auth/login",
            json={"username": "olga", "password": TEST_PASSWORD},
            timeout=30,
        ).json()
        bearer = {"Authorization": f"Bearer {operator['access_token']}"}
        started = requests.post(
            server.url + "/retrieve",
            data={"node": "ORTHANC", "study": got_uid, f"patient_{got_uid}": "REMOTE-2"},
            headers=bearer,
            allow_redirects=False,
            timeout=30,
        )
        job_id = int(started.headers["location"].split("started=")[1])

        def finished() -> dict | None:
            job = requests.get(f"{server.url}/api/jobs/{job_id}", headers=bearer, timeout=30)
            answer = job.json()
            return answer if answer["state"] not in ("queued", "running") else None

        job = wait_until(finished, 120, message="the C-GET job did not finish")
        check("C-GET job done", job["state"] == "done" and job["done"] == 3, job)
        found = requests.get(
            f"{server.dicomweb}/studies?StudyInstanceUID={got_uid}", headers=headers, timeout=30
        ).json()
        check("the C-GET study is in Klinika", found and found[0]["00201208"]["Value"][0] == 3)
        events = requests.get(
            server.url + "/api/audit?action=dicom:retrieve&patient_id=REMOTE-2",
            headers=headers,
            timeout=30,
        ).json()["events"]
        check("retrieves are audited with the patient", len(events) >= 2, len(events))
    finally:
        server.stop()
        orthanc.terminate()
        orthanc.wait(timeout=30)


def log_in(page, url: str, user: str, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/login?next={path}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def console(page, url, rest, orthanc_dicom, moved_uid, local_uid, expect) -> None:  # type: ignore[no-untyped-def]
    """Add and test the node, query and retrieve (C-MOVE), send from the worklist."""
    log_in(page, url, "tester", "/admin/nodes")
    form = page.get_by_test_id("new-node")
    form.locator("input[name=title]").fill("ORTHANC")
    form.locator("input[name=host]").fill("127.0.0.1")
    form.locator("input[name=port]").fill(str(orthanc_dicom))
    form.locator("input[name=description]").fill("Regional PACS")
    form.locator("input[name=service_find]").check()
    form.get_by_role("button", name="Add node").click()
    row = page.locator('tr[data-node="ORTHANC"]')
    expect(row).to_contain_text("Regional PACS")
    check("node added in the console", True)
    row.get_by_role("button", name="Test").click()
    expect(page.get_by_test_id("echo-result")).to_contain_text("C-ECHO to ORTHANC succeeded in")
    check("Test: C-ECHO with the round trip", True, page.get_by_test_id("echo-result").inner_text())

    page.get_by_role("link", name="Query/Retrieve").click()
    page.select_option("select[name=node]", "ORTHANC")
    page.fill("input[name=pid]", "REMOTE-1")
    page.get_by_role("button", name="Search").click()
    remote = page.locator(f'tr[data-study="{moved_uid}"]')
    expect(remote).to_contain_text("Петров")
    check("remote C-FIND shows the study", True)
    remote.locator("input[type=checkbox]").check()
    page.get_by_role("button", name="Retrieve into Klinika").click()
    job = page.locator("table[data-testid=jobs] tbody tr").first
    expect(job).to_have_attribute("data-state", "done", timeout=120_000)
    expect(job.get_by_test_id("result")).to_contain_text("Done: 3 received, 0 failed")
    check("retrieve job finished", True, job.get_by_test_id("progress").inner_text())
    page.goto(f"{url}/worklist?pid=REMOTE-1")
    expect(page.locator("tbody")).to_contain_text("Петров")
    check("the retrieved study is in the worklist", True)

    page.goto(f"{url}/worklist?pid=LOCAL-1")
    page.get_by_role("link", name="Send to…").first.click()
    page.select_option("select[name=node]", "ORTHANC")
    page.get_by_role("button", name="Send", exact=True).click()
    job = page.locator("table[data-testid=jobs] tbody tr").first
    expect(job).to_have_attribute("data-state", "done", timeout=120_000)
    expect(job.get_by_test_id("result")).to_contain_text("Done: 2 sent, 0 failed")
    expect(job.get_by_test_id("progress")).to_have_text("2 of 2")
    found = requests.post(
        rest + "/tools/find",
        json={"Level": "Study", "Query": {"StudyInstanceUID": local_uid}, "Expand": True},
        timeout=10,
    ).json()
    check("Send to… from the worklist reached Orthanc", len(found) == 1, found[:1])


if __name__ == "__main__":
    main()
