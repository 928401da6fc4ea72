"""PS3.18 details a conformant client relies on: rendered viewports and levels, the capabilities
resource, STOW warnings, and URLs right without a configured public base."""

from __future__ import annotations

import io
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from tests.conftest import LiveServer, start_server
from tests.dicomweb.conftest import stow
from tests.factories import make_instance

STUDY = "1.2.826.0.1.3680043.99.15"
WADL_NS = "{http://wadl.dev.java.net/2009/02}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without KLINIKA_PUBLIC_BASE_URL, holding one study of two 480x640 series."""
    live = start_server(
        tmp_path_factory.mktemp("conformance") / "data", {"KLINIKA_PUBLIC_BASE_URL": ""}
    )
    files = [
        make_instance(study_uid=STUDY, series_uid=f"{STUDY}.{s}", rows=480, columns=640)
        for s in (1, 1, 2)
    ]
    assert stow(live, files).status_code == 200
    yield live
    live.stop()


def get(server: LiveServer, path: str, **headers: str) -> requests.Response:
    return requests.get(server.dicomweb + path, headers=server.headers | headers, timeout=30)


def first_instance(server: LiveServer) -> str:
    found = get(server, f"/studies/{STUDY}/series/{STUDY}.1/instances").json()
    return f"/studies/{STUDY}/series/{STUDY}.1/instances/{found[0]['00080018']['Value'][0]}"


def size_of(answer: requests.Response) -> tuple[int, int]:
    assert answer.status_code == 200, answer.text
    with Image.open(io.BytesIO(answer.content)) as picture:
        return picture.size


def test_a_viewport_is_width_then_height_and_exactly_the_output_size(server: LiveServer) -> None:
    instance = first_instance(server)
    assert size_of(get(server, instance + "/rendered?viewport=200,100")) == (200, 100)
    assert size_of(get(server, instance + "/rendered?viewport=64,64,0,0,320,240")) == (64, 64)
    assert size_of(get(server, instance + "/rendered")) == (640, 480)
    for bad in ("200", "a,b", "0,10", "10,10,1,2"):
        assert get(server, instance + f"/rendered?viewport={bad}").status_code == 400, bad


def parts(answer: requests.Response) -> list[bytes]:
    head = f"Content-Type: {answer.headers['content-type']}\r\n\r\n".encode()
    message = message_from_bytes(head + answer.content)
    return [p.get_payload(decode=True) for p in message.get_payload()]


def test_study_and_series_render_as_multipart_of_their_instances(server: LiveServer) -> None:
    study = get(server, f"/studies/{STUDY}/rendered", Accept='multipart/related; type="image/png"')
    assert study.status_code == 200, study.text
    rendered = parts(study)
    instances = get(server, f"/studies/{STUDY}/instances").json()
    assert len(rendered) == len(instances) >= 3
    assert all(Image.open(io.BytesIO(p)).format == "JPEG" or p[:4] == b"\x89PNG" for p in rendered)
    series = get(server, f"/studies/{STUDY}/series/{STUDY}.2/rendered")
    assert len(parts(series)) == 1
    assert get(server, "/studies/1.2.3.4/rendered").status_code == 404


def test_the_capabilities_resource_lists_every_resource_and_options_tell_the_methods(
    server: LiveServer,
) -> None:
    wadl = requests.options(server.dicomweb, headers=server.headers, timeout=30)
    assert wadl.status_code == 200
    assert wadl.headers["content-type"].startswith("application/vnd.sun.wadl+xml")
    root = ElementTree.fromstring(wadl.content)
    methods = {
        r.get("path"): {m.get("name") for m in r.iter(WADL_NS + "method")}
        for r in root.iter(WADL_NS + "resource")
    }
    assert {"GET", "POST"} <= methods["studies"]
    assert "GET" in methods["studies/{study}/series/{series}/instances/{sop}/frames/{frames}"]
    as_json = get(server, "", Accept="application/json").json()
    assert any(r["path"] == "/studies/{study}" for r in as_json["resources"])
    allow = requests.options(server.dicomweb + "/studies", headers=server.headers, timeout=30)
    assert allow.status_code == 204
    assert {"GET", "POST", "OPTIONS"} <= set(allow.headers["allow"].replace(" ", "").split(","))
    study = requests.options(f"{server.dicomweb}/studies/{STUDY}", headers=server.headers)
    assert "DELETE" in study.headers["allow"]
    unknown = requests.options(server.dicomweb + "/nothing/here", headers=server.headers)
    assert unknown.status_code == 404
    assert requests.options(server.dicomweb).status_code == 401  # no session, no answer


def test_a_stow_of_duplicates_answers_202_with_warnings(server: LiveServer) -> None:
    again = make_instance(study_uid=STUDY, series_uid=f"{STUDY}.3")
    assert stow(server, [again]).status_code == 200
    repeated = stow(server, [again])
    assert repeated.status_code == 202
    item = repeated.json()["00081199"]["Value"][0]
    assert item["00081196"]["Value"] == [0xB000]


def test_urls_carry_the_port_when_the_host_header_has_none(
    server: LiveServer, tmp_path: Path
) -> None:
    """dicomweb-client sends ``Host: 127.0.0.1`` without the port; its bulk data still loads."""
    client = DICOMwebClient(url=server.dicomweb, headers=dict(server.headers))
    instance = first_instance(server)
    _, study, _, series, _, sop = instance.strip("/").split("/")
    metadata = client.retrieve_instance_metadata(study, series, sop)
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert uri.startswith(server.url + "/dicom-web/"), uri
    assert len(client.retrieve_bulkdata(uri)[0]) == 480 * 640 * 2
    stowed = stow(server, [make_instance(study_uid=STUDY, series_uid=f"{STUDY}.4")])
    port = server.url.rsplit(":", 1)[1]
    assert f":{port}/dicom-web/studies/{STUDY}" in stowed.json()["00081190"]["Value"][0]
