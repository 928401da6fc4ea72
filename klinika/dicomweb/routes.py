"""Assembling the DICOMweb routers."""

from __future__ import annotations

from fastapi import APIRouter

from klinika.archive import Archive
from klinika.config import Settings
from klinika.dicomweb.capabilities import add_capabilities
from klinika.dicomweb.common import Guard
from klinika.dicomweb.delete import create_delete_router
from klinika.dicomweb.qido import create_qido_router
from klinika.dicomweb.stow import create_stow_router
from klinika.dicomweb.transcoded import TranscodeCache
from klinika.dicomweb.uri import create_wado_uri_router
from klinika.dicomweb.wado import create_wado_router
from klinika.observability.metrics import Metrics


def create_dicomweb_router(
    archive: Archive, settings: Settings, guard: Guard, metrics: Metrics | None = None
) -> APIRouter:
    """QIDO-RS, WADO-RS and STOW-RS, to be mounted at ``/dicom-web``."""
    router = APIRouter(tags=["DICOMweb"])
    counter = metrics.wado_transcodes if metrics is not None else None
    transcoded = TranscodeCache(settings.transcode_cache_bytes, counter)
    router.include_router(create_qido_router(archive, settings, guard))
    router.include_router(create_stow_router(archive, settings, guard))
    router.include_router(create_wado_router(archive, settings, guard, transcoded))
    router.include_router(create_delete_router(archive, guard))
    add_capabilities(router, guard, settings.public_base_url)
    return router


__all__ = ["create_dicomweb_router", "create_wado_uri_router"]
