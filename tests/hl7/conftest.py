"""Fixtures of the HL7 tests: a live ``klinika serve`` with its MLLP listener, and a sender
using python-hl7's MLLP client (the real client library)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count

import hl7
import pytest
import requests
from hl7.client import MLLPClient
from pydicom.uid import generate_uid

from tests.conftest import LiveServer, free_port, port_open, start_server, wait_until
from tests.dicomweb.conftest import stow
from tests.dimse.conftest import TEST_SCU
from tests.factories import make_instance

_IDS = count(1)


@dataclass
class Ack:
    """An ACK as the sender reads it."""

    message: hl7.Message

    @property
    def code(self) -> str:
        return str(self.message["MSA.F1"])

    @property
    def control_id(self) -> str:
        return str(self.message["MSA.F2"])

    @property
    def error_code(self) -> str:
        try:
            return str(self.message["ERR.F3.R1.C1"])
        except KeyError:
            return ""

    @property
    def text(self) -> str:
        return str(self.message["MSA.F3"])


@dataclass
class Hl7Site:
    server: LiveServer
    port: int

    def send(self, message: str, encoding: str = "utf-8") -> Ack:
        """Send ``message`` (segments joined by CR) over MLLP; the ACK."""
        with MLLPClient("127.0.0.1", self.port, encoding=encoding) as client:
            raw = client.send_message(message.encode(encoding))
        body = raw.strip(b"\x0b\x1c\r")
        return Ack(hl7.parse(body.decode(encoding)))

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(
            self.server.url + path, params=params, headers=self.server.headers, timeout=60
        )


def control_id() -> str:
    return f"T{next(_IDS):05d}"


def msh(
    kind: str,
    *,
    sender: str = "HIS",
    facility: str = "HOSPITAL",
    charset: str = "UNICODE UTF-8",
    ident: str | None = None,
) -> str:
    """An MSH segment of a v2.5.1 message of ``kind`` (``ADT^A08`` …) from ``sender``."""
    return (
        f"MSH|^~\\&|{sender}|{facility}|KLINIKA|RADIOLOGY|20260101120000||{kind}|"
        f"{ident or control_id()}|P|2.5.1||||||{charset}"
    )


def store_patient(site: Hl7Site, patient_id: str, name: str, images: int = 1) -> str:
    """A study of ``images`` instances of a new patient, sent through STOW-RS."""
    study_uid = generate_uid()
    series_uid = generate_uid()
    files = [
        make_instance(
            study_uid=study_uid,
            series_uid=series_uid,
            PatientID=patient_id,
            PatientName=name,
            PatientBirthDate="19700101",
            PatientSex="M",
        )
        for _ in range(images)
    ]
    assert stow(site.server, files).status_code == 200
    return study_uid


@pytest.fixture(scope="module")
def hl7_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hl7Site]:
    port = free_port()
    server = start_server(
        tmp_path_factory.mktemp("hl7") / "data",
        extra_env={
            "KLINIKA_HL7_PORT": str(port),
            "KLINIKA_HL7_SENDERS": "HIS@HOSPITAL, RIS",
            "KLINIKA_MODALITIES": TEST_SCU,  # C-FIND checks what an update changed
        },
    )
    wait_until(lambda: port_open(port), 30, message="the HL7 listener did not open")
    yield Hl7Site(server, port)
    server.stop()
