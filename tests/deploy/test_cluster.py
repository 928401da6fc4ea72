"""Stateless nodes beyond one machine (issue 20): two ``klinika serve`` nodes and one
``klinika dimse`` node, each in its own network namespace (our stand-in for a machine), on one
PostgreSQL index and one S3 bucket, behind the project's nginx configuration.

The namespaces hang off a bridge of this host; PostgreSQL and SeaweedFS listen on the bridge's
address only (reachable from the namespaces, not from outside the machine), nginx on loopback.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from tests.conftest import TEST_PASSWORD, port_open, wait_until
from tests.databases import running_postgres
from tests.deploy.nginx import Nginx, start_nginx
from tests.dicomweb.conftest import stow
from tests.factories import make_instance
from tests.objectstore import ACCESS_KEY, BUCKET, SECRET_KEY, start_seaweedfs

pytestmark = pytest.mark.slow

HTTP_PORT, DIMSE_PORT = 8042, 4242  # every node is a machine of its own: the default ports
STUDY = "1.2.826.0.1.3680043.8.498.7701"
SERIES = STUDY + ".1"


@dataclass
class Fabric:
    """A bridge on this host and one network namespace per node, a veth pair each."""

    tag: str
    subnet: str  # "10.213.N": the bridge is .1, the nodes .2, .3, …
    namespaces: list[str] = field(default_factory=list)

    @property
    def host_ip(self) -> str:
        return f"{self.subnet}.1"

    def add_node(self) -> tuple[str, str]:
        """A new namespace (its name, its address) wired to the bridge."""
        number = len(self.namespaces) + 2
        name, veth = f"{self.tag}n{number}", f"{self.tag}v{number}"
        ip = f"{self.subnet}.{number}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}i")
        _ip("link", "set", veth, "master", f"{self.tag}br", "up")
        _ip("link", "set", f"{veth}i", "netns", name)
        _ip("-n", name, "addr", "add", f"{ip}/24", "dev", f"{veth}i")
        _ip("-n", name, "link", "set", f"{veth}i", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        return name, ip

    def remove(self) -> None:
        for name in self.namespaces:  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{self.tag}br"], capture_output=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def fabric() -> Iterator[Fabric]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the multi-node test needs root and iproute2 (ip netns) to make its hosts")
    tag = f"k{os.getpid() % 100000}"
    made = Fabric(tag, f"10.213.{os.getpid() % 200 + 20}")
    try:
        _ip("link", "add", f"{tag}br", "type", "bridge")
        _ip("addr", "add", f"{made.host_ip}/24", "dev", f"{tag}br")
        _ip("link", "set", f"{tag}br", "up")
        yield made
    finally:
        made.remove()


@dataclass
class Node:
    """A Klinika process in its namespace."""

    name: str
    ip: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready: str
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> None:
        """Start the process and wait until it answers (HTTP health, or the DIMSE port)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

        def up() -> bool:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            if self.ready == "dimse":
                return port_open(DIMSE_PORT, self.ip)
            try:
                return requests.get(self.url + "/health", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_until(up, 90, message=f"node {self.name} did not come up")

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{HTTP_PORT}"

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug would."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    web_a: Node
    web_b: Node
    dimse: Node
    proxy: str  # nginx, https
    cert: Path
    headers: dict[str, str]


def _start_node(
    fabric: Fabric, root: Path, env: dict[str, str], command: list[str], ready: str
) -> Node:
    namespace, ip = fabric.add_node()
    data = root / namespace
    data.mkdir()
    log = root / f"{namespace}.log"
    node_env = {
        **os.environ,
        **env,
        "KLINIKA_DATA_DIR": str(data),
        "KLINIKA_HTTP_HOST": ip,
        "KLINIKA_HTTP_PORT": str(HTTP_PORT),
        "KLINIKA_DIMSE_HOST": ip,
        "KLINIKA_DIMSE_PORT": str(DIMSE_PORT),
    }
    argv = ["ip", "netns", "exec", namespace, sys.executable, "-m", "klinika", *command]
    node = Node(namespace, ip, argv, node_env, log, ready)
    node.start()
    return node


@pytest.fixture(scope="module")
def cluster(fabric: Fabric, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (apt-get install nginx)")
    root = tmp_path_factory.mktemp("cluster")
    with running_postgres(listen=fabric.host_ip) as database:
        s3 = start_seaweedfs(root / "s3", ip=fabric.host_ip)
        nodes: list[Node] = []
        nginx: Nginx | None = None
        nginx_root = root / "nginx"
        nginx_root.mkdir()
        try:
            shared = {
                "KLINIKA_DATABASE_URL": f"{database}/postgres",
                "KLINIKA_JWT_SECRET": "one-secret-shared-by-every-node-0123456789",
                "KLINIKA_STORAGE": "s3",
                "KLINIKA_S3_ENDPOINT": s3.endpoint,
                "KLINIKA_S3_BUCKET": BUCKET,
                "KLINIKA_S3_REGION": "us-east-1",
                "KLINIKA_S3_PREFIX": "cluster",
                "KLINIKA_S3_ACCESS_KEY_ID": ACCESS_KEY,
                "KLINIKA_S3_SECRET_ACCESS_KEY": SECRET_KEY,
                "KLINIKA_TRUSTED_PROXIES": fabric.host_ip,  # nginx reaches the nodes from there
                "KLINIKA_DIMSE_WORKERS": "1",
                # the modality is this host, as the nodes see it over the bridge
                "KLINIKA_MODALITIES": f"MODALITY1@{fabric.host_ip}:11112/store",
            }
            setup = root / "setup"
            subprocess.run(
                [
                    *(sys.executable, "-m", "klinika", "--data-dir", str(setup)),
                    *("user", "add", "tester", "--role", "admin", "--password", TEST_PASSWORD),
                ],
                check=True,
                capture_output=True,
                env={**os.environ, **shared},
            )
            web = ["serve", "--no-dimse"]
            nodes.append(_start_node(fabric, root, shared, web, "http"))
            nodes.append(_start_node(fabric, root, shared, web, "http"))
            nodes.append(_start_node(fabric, root, shared, ["dimse"], "dimse"))
            nginx = start_nginx(nginx_root, [f"{node.ip}:{HTTP_PORT}" for node in nodes[:2]])
            cert, proxy = nginx.cert, f"https://localhost:{nginx.https_port}"
            answer = requests.post(
                proxy + "/api/auth/login",
                json={"username": "tester", "password": TEST_PASSWORD},
                verify=str(cert),
                timeout=60,
            )
            answer.raise_for_status()
            headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            yield Cluster(nodes[0], nodes[1], nodes[2], proxy, cert, headers)
        finally:
            if nginx is not None:
                nginx.stop()
            for node in nodes:
                node.stop()
            s3.stop()


def _node(url: str, headers: dict[str, str]) -> object:
    """A LiveServer-shaped target for :func:`tests.dicomweb.conftest.stow`."""

    @dataclass
    class Target:
        url: str
        headers: dict[str, str]

        @property
        def dicomweb(self) -> str:
            return self.url + "/dicom-web"

    return Target(url, headers)


def instance_uids(url: str, headers: dict[str, str], **verify: object) -> set[str]:
    answer = requests.get(
        f"{url}/dicom-web/studies/{STUDY}/instances",
        headers=headers,
        timeout=60,
        **verify,  # type: ignore[arg-type]
    )
    if answer.status_code == 204:
        return set()
    answer.raise_for_status()
    return {item["00080018"]["Value"][0] for item in answer.json()}


def test_what_one_node_stores_every_node_serves_at_once(cluster: Cluster) -> None:
    headers = cluster.headers
    sent = make_instance(study_uid=STUDY, series_uid=SERIES, rows=16, columns=16, frames=2)
    sop_uid = str(pydicom.dcmread(io.BytesIO(sent)).SOPInstanceUID)
    assert stow(_node(cluster.web_a.url, headers), [sent]).status_code == 200  # type: ignore[arg-type]
    assert sop_uid in instance_uids(cluster.web_b.url, headers)
    metadata = requests.get(
        f"{cluster.web_b.url}/dicom-web/studies/{STUDY}/series/{SERIES}/metadata",
        headers=headers,
        timeout=60,
    )
    assert sop_uid in {item["00080018"]["Value"][0] for item in metadata.json()}
    frame = requests.get(
        f"{cluster.web_b.url}/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{sop_uid}/frames/2",
        headers=headers | {"Accept": 'multipart/related; type="application/octet-stream"'},
        timeout=60,
    )
    dataset = pydicom.dcmread(io.BytesIO(sent))
    size = dataset.Rows * dataset.Columns * dataset.BitsAllocated // 8
    assert dataset.PixelData[size : 2 * size] in frame.content

    ae = AE(ae_title="MODALITY1")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(cluster.dimse.ip, DIMSE_PORT, ae_title="KLINIKA")
    assert assoc.is_established
    try:
        by_dimse = pydicom.dcmread(io.BytesIO(make_instance(study_uid=STUDY, series_uid=SERIES)))
        assert assoc.send_c_store(by_dimse).Status == 0x0000
    finally:
        assoc.release()
    for url in (cluster.web_a.url, cluster.web_b.url):
        assert str(by_dimse.SOPInstanceUID) in instance_uids(url, headers)
    # and through nginx, whichever node answers
    assert {sop_uid, str(by_dimse.SOPInstanceUID)} <= instance_uids(
        cluster.proxy, headers, verify=str(cluster.cert)
    )


def test_a_node_killed_mid_ingest_loses_nothing_it_acknowledged(cluster: Cluster) -> None:
    headers = cluster.headers
    acknowledged: list[str] = []
    stop = threading.Event()

    def keep_storing() -> None:
        target = _node(cluster.web_a.url, headers)
        while not stop.is_set():
            data = make_instance(study_uid=STUDY, series_uid=SERIES + "9", rows=64, columns=64)
            try:
                answer = stow(target, [data])  # type: ignore[arg-type]
            except requests.RequestException:
                return  # the node is gone
            if answer.status_code == 200:
                acknowledged.append(str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID))

    writer = threading.Thread(target=keep_storing, daemon=True)
    writer.start()
    wait_until(lambda: len(acknowledged) >= 8, 120, message="node A acknowledged too little")
    cluster.web_a.kill()
    stop.set()
    writer.join(timeout=120)
    assert not writer.is_alive()
    try:
        _check_what_was_acknowledged(cluster, acknowledged)
    finally:
        cluster.web_a.start()  # the other tests of the module find two nodes again


def _check_what_was_acknowledged(cluster: Cluster, acknowledged: list[str]) -> None:
    headers = cluster.headers

    stored = instance_uids(cluster.web_b.url, headers)
    assert set(acknowledged) <= stored, set(acknowledged) - stored
    for sop_uid in acknowledged[-3:]:  # the last acknowledged ones read back whole from B
        answer = requests.get(
            f"{cluster.web_b.url}/dicom-web/studies/{STUDY}/series/{SERIES}9/instances/{sop_uid}",
            headers=headers | {"Accept": 'multipart/related; type="application/dicom"'},
            timeout=60,
        )
        assert answer.status_code == 200
    # nginx sends every request to the node that is left
    for _ in range(6):
        assert set(acknowledged) <= instance_uids(cluster.proxy, headers, verify=str(cluster.cert))
