"""Production shape: two HTTP workers and a DIMSE process on one PostgreSQL and one storage
folder, ingesting the same study from both sides at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import requests

from tests.conftest import TEST_PASSWORD, free_port, login, wait_until
from tests.dicomweb.conftest import multipart_body
from tests.dimse.test_dcmtk import dataset_part
from tests.factories import make_instance


def test_two_workers_and_dimse_on_postgresql_lose_and_duplicate_nothing(
    tmp_path: Path, postgres_server: str
) -> None:
    with psycopg.connect(
        postgres_server.replace("+psycopg", "") + "/postgres", autocommit=True
    ) as connection:
        connection.execute('CREATE DATABASE "klinika_workers"')
    http_port, dimse_port = free_port(), free_port()
    env = {
        **os.environ,
        "KLINIKA_DATA_DIR": str(tmp_path / "data"),
        "KLINIKA_DATABASE_URL": f"{postgres_server}/klinika_workers",
        "KLINIKA_HTTP_PORT": str(http_port),
        "KLINIKA_DIMSE_PORT": str(dimse_port),
        "KLINIKA_JWT_SECRET": "a-shared-secret-for-every-worker-0123456789",
    }
    klinika = [sys.executable, "-m", "klinika"]
    subprocess.run(
        [*klinika, "user", "add", "tester", "--role", "admin", "--password", TEST_PASSWORD],
        env=env,
        check=True,
        capture_output=True,
    )
    http = subprocess.Popen(
        [*klinika, "serve", "--workers", "2", "--no-dimse"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dimse = subprocess.Popen(
        [*klinika, "dimse"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_until(
            lambda: requests.get(url + "/health/ready", timeout=1).status_code == 200,
            60,
            message="the workers did not start",
            ignoring=(requests.ConnectionError,),
        )
        headers = login(url, "tester")
        study = "1.2.826.0.1.3680043.99.300"
        instances = {
            f"{study}.1.{n}": make_instance(
                study_uid=study,
                series_uid=study + ".1",
                sop_uid=f"{study}.1.{n}",
                rows=64,
                columns=64,
            )
            for n in range(40)
        }
        folder = tmp_path / "modality"
        folder.mkdir()
        for sop, data in instances.items():
            (folder / f"{sop}.dcm").write_bytes(data)

        def by_stow() -> None:
            items = list(instances.values())
            for start in range(0, len(items), 5):
                body, content_type = multipart_body(items[start : start + 5])
                response = requests.post(
                    url + "/dicom-web/studies",
                    data=body,
                    timeout=60,
                    headers={"Content-Type": content_type, **headers},
                )
                # 202: some instances arrived by C-STORE first (a duplicate is a warning)
                assert response.status_code in (200, 202), response.text
                assert "00081198" not in response.json(), response.text

        def by_cstore() -> None:
            subprocess.run(
                [
                    "storescu",
                    "-aec",
                    "KLINIKA",
                    "127.0.0.1",
                    str(dimse_port),
                    *map(str, sorted(folder.iterdir())),
                ],
                check=True,
                timeout=120,
                capture_output=True,
                env={**os.environ, "TCP_NODELAY": "1"},
            )

        threads = [threading.Thread(target=by_stow), threading.Thread(target=by_cstore)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        found = requests.get(
            f"{url}/dicom-web/studies/{study}/series/{study}.1/instances",
            headers=headers,
            timeout=30,
        ).json()
        assert sorted(i["00080018"]["Value"][0] for i in found) == sorted(instances)
        for sop, data in list(instances.items())[:10]:
            body = requests.get(
                f"{url}/dicom-web/studies/{study}/series/{study}.1/instances/{sop}",
                timeout=30,
                headers={
                    "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
                    **headers,
                },
            ).content
            # the data set as sent, whichever side stored it (C-STORE gets our file meta)
            assert dataset_part(data) in body, sop
        with psycopg.connect(postgres_server.replace("+psycopg", "") + "/klinika_workers") as db:
            rows = db.execute(
                "SELECT count(*), count(DISTINCT sop_instance_uid) FROM instances"
                " WHERE sop_instance_uid LIKE %s",
                (study + ".%",),
            ).fetchone()
            assert rows == (40, 40)
    finally:
        for process in (http, dimse):
            process.terminate()
            process.wait(timeout=30)
