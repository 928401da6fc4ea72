"""DICOM TLS (PS3.15 B.1) with DCMTK's ``+tls`` tools: echo, store and find over TLS, client
certificates verified against our CA, and ``klinika echo/send --tls``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from klinika.config import load_settings
from klinika.dimse.tls import server_tls_context
from tests.conftest import LiveServer, free_port, port_open, start_server, wait_until
from tests.dimse.conftest import DCMTK_ENV
from tests.factories import make_instance


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _write_key(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(folder: Path, name: str) -> tuple[Pair, rsa.RSAPrivateKey, x509.Certificate]:
    key = _write_key(folder / f"{name}.key")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pair(folder / f"{name}.crt", folder / f"{name}.key"), key, cert


def make_leaf(
    folder: Path, name: str, ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, *, server: bool
) -> Pair:
    key = _write_key(folder / f"{name}.key")
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pair(folder / f"{name}.crt", folder / f"{name}.key")


@dataclass(frozen=True)
class Pki:
    ca: Pair
    server: Pair
    client: Pair  # signed by our CA
    rogue: Pair  # signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key, ca_cert = make_ca(folder, "klinika-ca")
    _, rogue_key, rogue_cert = make_ca(folder, "rogue-ca")
    return Pki(
        ca=ca,
        server=make_leaf(folder, "klinika", ca_key, ca_cert, server=True),
        client=make_leaf(folder, "secure-ws", ca_key, ca_cert, server=False),
        rogue=make_leaf(folder, "rogue-ws", rogue_key, rogue_cert, server=False),
    )


@dataclass
class TlsServer:
    live: LiveServer
    tls_port: int

    @property
    def plain_port(self) -> str:
        return self.live.env["KLINIKA_DIMSE_PORT"]


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    tls_port = free_port()
    live = start_server(
        tmp_path_factory.mktemp("tls") / "data",
        {
            "KLINIKA_DIMSE_TLS_PORT": str(tls_port),
            "KLINIKA_DIMSE_TLS_CERT": str(pki.server.cert),
            "KLINIKA_DIMSE_TLS_KEY": str(pki.server.key),
            "KLINIKA_DIMSE_TLS_CA": str(pki.ca.cert),
            # SECURE may query, but only with a client certificate our CA signed
            "KLINIKA_MODALITIES": "SECURE@127.0.0.1:11112/echo,store,find+cert",
        },
    )
    yield TlsServer(live, tls_port)
    live.stop()


def tls_tool(
    server: TlsServer,
    tool: str,
    *args: str,
    client: Pair | None,
    aet: str = "SECURE",
    files: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """A DCMTK tool over TLS: with a client certificate (``+tls key cert``) or anonymous
    (``+tla``); the server certificate is verified against our CA (``+cf``)."""
    security = ["+tls", str(client.key), str(client.cert)] if client else ["+tla"]
    command = [tool, "-v", "-aet", aet, "-aec", "KLINIKA", *security, "+cf",
               str(pki_ca(server)), *args, "127.0.0.1", str(server.tls_port), *files]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, env=DCMTK_ENV, timeout=60, check=False
    )


def pki_ca(server: TlsServer) -> str:
    return server.live.env["KLINIKA_DIMSE_TLS_CA"]


def test_the_listener_speaks_tls_1_2_or_newer_only(pki: Pki, tmp_path: Path) -> None:
    settings = load_settings(
        env={},
        data_dir=tmp_path,
        dimse_tls_cert=str(pki.server.cert),
        dimse_tls_key=str(pki.server.key),
    )
    context = server_tls_context(settings)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # no CA: no client certificate asked for
    assert server_tls_context(load_settings(env={}, data_dir=tmp_path)) is None


def test_echo_store_and_find_over_tls_with_a_client_certificate(
    server: TlsServer, pki: Pki, tmp_path: Path
) -> None:
    echoed = tls_tool(server, "echoscu", client=pki.client)
    assert echoed.returncode == 0, echoed.stderr

    path = tmp_path / "ct.dcm"
    path.write_bytes(make_instance(PatientID="TLS-1"))
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    stored = tls_tool(server, "storescu", client=pki.client, files=(str(path),))
    assert stored.returncode == 0, stored.stderr
    assert "Received Store Response (Success)" in stored.stderr, stored.stderr

    answers = tmp_path / "answers"
    answers.mkdir()
    found = tls_tool(
        server, "findscu", "-S", "-X", "-od", str(answers), "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={dataset.StudyInstanceUID}", client=pki.client,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    (answer,) = [pydicom.dcmread(p) for p in answers.glob("rsp*")]
    assert answer.StudyInstanceUID == dataset.StudyInstanceUID


def test_a_client_certificate_from_another_ca_is_refused(
    server: TlsServer, pki: Pki, tmp_path: Path
) -> None:
    path = tmp_path / "rogue.dcm"
    path.write_bytes(make_instance(PatientID="ROGUE"))
    refused = tls_tool(server, "storescu", client=pki.rogue, files=(str(path),))
    assert refused.returncode != 0
    assert "Success" not in refused.stderr
    sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    response = requests.get(
        f"{server.live.dicomweb}/instances",
        params={"SOPInstanceUID": str(sop)},
        headers=server.live.headers,
        timeout=30,
    )
    assert response.status_code == 200 and not (response.content and response.json())


def test_a_modality_marked_cert_may_not_query_without_a_verified_certificate(
    server: TlsServer, pki: Pki
) -> None:
    """Without its certificate SECURE is just a local AE: it may echo and store (the
    embedded default) but not query, over anonymous TLS or plain TCP."""
    anonymous = tls_tool(server, "findscu", "-S", "-k", "QueryRetrieveLevel=STUDY", client=None)
    assert "Final Find Response (Unknown Status: 0x124)" in anonymous.stderr, anonymous.stderr
    plain = subprocess.run(
        ["findscu", "-v", "-S", "-aet", "SECURE", "-aec", "KLINIKA", "-k",
         "QueryRetrieveLevel=STUDY", "127.0.0.1", server.plain_port],
        capture_output=True, text=True, env=DCMTK_ENV, timeout=60,
    )  # fmt: skip
    assert "Final Find Response (Unknown Status: 0x124)" in plain.stderr, plain.stderr
    assert tls_tool(server, "echoscu", client=None).returncode == 0

    def two_denied_reads() -> Any:
        audit = requests.get(
            server.live.url + "/api/audit",
            params={"action": "dicom:read", "outcome": "denied", "actor": "SECURE"},
            headers=server.live.headers,
            timeout=30,
        ).json()
        return audit if audit["total"] >= 2 else None

    # recording may lag a moment behind the answer
    audit = wait_until(two_denied_reads, 5, message="two denied reads by SECURE")
    assert audit["total"] == 2
    assert {e["details"]["service"] for e in audit["events"]} == {"find"}


def test_klinika_echo_and_send_use_tls(server: TlsServer, pki: Pki, tmp_path: Path) -> None:
    klinika = [sys.executable, "-m", "klinika", "--data-dir", str(server.live.data_dir)]
    tls = ["--tls", "--tls-ca", str(pki.ca.cert), "--tls-cert", str(pki.client.cert),
           "--tls-key", str(pki.client.key)]  # fmt: skip
    echoed = subprocess.run(
        [*klinika, "echo", f"KLINIKA@127.0.0.1:{server.tls_port}", *tls],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert echoed.returncode == 0 and "C-ECHO status 0x0000" in echoed.stdout, echoed.stderr
    untrusted = subprocess.run(
        [*klinika, "echo", f"KLINIKA@127.0.0.1:{server.tls_port}", "--tls",
         "--tls-ca", str(pki.rogue.cert)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert untrusted.returncode != 0, "a server certificate our CA file does not vouch for"

    # send a study to a DCMTK storescp that speaks TLS and wants our client certificate
    study_uid = "1.2.826.0.1.3680043.99.77"
    (tmp_path / "in.dcm").write_bytes(make_instance(study_uid=study_uid))
    imported = subprocess.run(
        [*klinika, "import", str(tmp_path / "in.dcm")], capture_output=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr
    received = tmp_path / "received"
    received.mkdir()
    port = free_port()
    storescp = subprocess.Popen(
        ["storescp", "-aet", "TLSSCP", "+tls", str(pki.server.key), str(pki.server.cert),
         "+cf", str(pki.ca.cert), "-od", str(received), str(port)],
        env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port), 30, message="storescp did not listen")
        sent = subprocess.run(
            [*klinika, "send", study_uid, "--to", f"TLSSCP@127.0.0.1:{port}", *tls],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0 and "sent 1, failed 0" in sent.stdout, sent.stderr
    finally:
        storescp.terminate()
        storescp.wait(timeout=10)
    (arrived,) = list(received.iterdir())
    assert pydicom.dcmread(arrived).StudyInstanceUID == study_uid
