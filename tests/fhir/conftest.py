"""Fixtures of the FHIR tests: an installation with a user per role (shared with the auth
tests), studies with Cyrillic patient names, and the fhirclient R4 models that parse every
resource the API answers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirabstractbase import FHIRAbstractBase
from pydicom.uid import generate_uid

from klinika.archive import Archive
from tests.auth.conftest import Installation, install, live_url, site  # noqa: F401  (fixtures)
from tests.factories import make_instance
from tests.reports.conftest import CYRILLIC_NAME, Study, store_study

__all__ = ["CYRILLIC_NAME", "Installation", "Study", "parsed", "store_study"]

FHIR_JSON = "application/fhir+json"


def parsed(response: Any, model: type[FHIRAbstractBase]) -> Any:
    """The answer as a fhirclient R4 model (strict: unknown or malformed elements raise),
    after checking the status and the media type."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    body = response.json()
    resource = model(body, strict=True)
    if isinstance(resource, Bundle):  # each entry's resource is parsed by its own model
        assert body["type"] == "searchset" and isinstance(body["total"], int)
    return resource


def store_series(archive: Archive, study_uid: str, modality: str, images: int, **attrs: Any) -> str:
    """Add a series of ``images`` instances of ``modality`` to ``study_uid``."""
    series_uid = generate_uid()
    for number in range(1, images + 1):
        outcome = archive.store(
            make_instance(
                study_uid=study_uid,
                series_uid=series_uid,
                Modality=modality,
                InstanceNumber=number,
                SeriesNumber=2,
                **attrs,
            )
        )
        assert outcome.status == "stored", outcome
    return series_uid


@pytest.fixture
def client(site: Installation) -> TestClient:  # noqa: F811
    return site.client


@pytest.fixture
def study(site: Installation) -> Study:  # noqa: F811
    return store_study(site.runtime.archive)
