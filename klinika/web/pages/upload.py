"""Upload: files, folders and ZIP archives dropped in the browser, stored through the one
ingest path. The page sends one file per request (with progress); each answer lists what
happened to every instance in it (stored, duplicate, rejected with the reason)."""

import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive, StoreOutcome, audit_subject
from klinika.archive.sources import (
    DEFAULT_LIMITS,
    ImportLimits,
    Item,
    store_items,
    too_large,
    zip_members,
)
from klinika.auth.http import note_access
from klinika.auth.models import Principal
from klinika.config import Settings
from klinika.errors import RejectReason, RequestTooLarge
from klinika.i18n import N_, translator
from klinika.web.pages.context import PageContext, request_language

#: Why an instance was not stored (every klinika.errors.RejectReason), as the page says it;
#: the archive's own message follows as the detail.
REJECT_LABELS: dict[RejectReason, str] = {
    RejectReason.UNREADABLE: N_("not readable as DICOM"),
    RejectReason.MISSING_ATTRIBUTE: N_("a required attribute is missing"),
    RejectReason.INVALID_UID: N_("a UID is not valid"),
    RejectReason.INVALID_CHARSET: N_("text that does not fit its character set"),
    RejectReason.UNSUPPORTED_TRANSFER_SYNTAX: N_("a transfer syntax Klinika does not know"),
    RejectReason.TOO_LARGE: N_("too large"),
    RejectReason.STUDY_MISMATCH: N_("belongs to another study"),
    RejectReason.NOT_AUTHORIZED: N_("your role may not store this"),
    RejectReason.DUPLICATE: N_("already in the archive"),
    RejectReason.STORAGE_FULL: N_("the storage is full"),
    RejectReason.STORAGE_UNAVAILABLE: N_("the storage cannot be reached"),
    RejectReason.UNSUPPORTED_MEDIA_TYPE: N_("not a DICOM file"),
    RejectReason.UNSUPPORTED_DOCUMENT: N_("a document type Klinika does not accept"),
    RejectReason.PATIENT_MISMATCH: N_("names another patient than its study"),
}

#: Bodies up to this size stay in memory; larger ones (ZIPs) spill to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
#: ZIP members go to the archive in batches of at most this many files and bytes.
BATCH = 16
BATCH_BYTES = 64 * 1024 * 1024


def outcome_json(name: str, outcome: StoreOutcome) -> dict[str, Any]:
    return {
        "name": name,
        "status": outcome.status,
        "reason": outcome.reason,
        "message": outcome.message,
        "study_uid": outcome.study_uid,
        "patient_id": outcome.patient_id,
    }


def _batches(members: Iterator[tuple[str, Item]]) -> Iterator[list[tuple[str, Item]]]:
    """Members in batches small enough to hold in memory (by count and by bytes)."""
    batch: list[tuple[str, Item]] = []
    held = 0
    for name, item in members:
        batch.append((name, item))
        held += len(item) if isinstance(item, bytes) else 0
        if len(batch) >= BATCH or held >= BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def upload_limits(settings: Settings) -> ImportLimits:
    """The upload's limits, from the settings."""
    return ImportLimits(
        max_instance_bytes=settings.max_instance_bytes,
        zip_max_members=settings.zip_max_members,
        zip_max_total_bytes=settings.zip_max_total_bytes,
        zip_max_ratio=settings.zip_max_ratio,
    )


def store_upload(
    archive: Archive, name: str, body: IO[bytes], limits: ImportLimits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Store one uploaded file: a DICOM file, or a ZIP whose members are read a batch at a time.

    Every file gets an outcome; a member that cannot be read is rejected with its reason and
    the others go on. ``body`` is untrusted (any bytes a user dropped). A ZIP over the
    limits raises :class:`RequestTooLarge` before a member is read.
    """
    body.seek(0)
    if zipfile.is_zipfile(body):
        body.seek(0)
        results: list[dict[str, Any]] = []
        with zipfile.ZipFile(body) as bundle:
            for batch in _batches(zip_members(bundle, limits)):
                outcomes = store_items(archive, [item for _, item in batch])
                for (member, _), outcome in zip(batch, outcomes, strict=True):
                    results.append(outcome_json(f"{name}/{member}", outcome))
        return results
    size = body.seek(0, 2)
    if size > limits.max_instance_bytes:
        return [outcome_json(name, too_large(size, limits.max_instance_bytes))]
    body.seek(0)
    return [outcome_json(name, archive.store(body.read(), bare_datasets=True))]


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    Storer = Annotated[Principal, Depends(context.guard("dicom:store"))]
    # opening the form stores nothing: no dicom:store event (each upload is one)
    Opener = Annotated[Principal, Depends(context.guard("dicom:store", touches_data=False))]

    @router.get("/upload")
    def upload_page(request: Request, principal: Opener) -> Response:
        speak = translator(request_language(request, principal))
        reasons = {code: speak.gettext(label) for code, label in REJECT_LABELS.items()}
        return context.pages.render(request, "upload/index.html", active="upload", reasons=reasons)

    limits = upload_limits(context.settings)
    most = context.settings.max_request_bytes

    @router.post("/upload/files")
    async def upload_file(request: Request, _: Storer) -> Response:
        """The request body is one file (``X-Filename`` names it); streamed to a spool that
        goes to disk past ``SPOOL_BYTES``, refused (413) past ``max_request_bytes``."""
        name = unquote(request.headers.get("x-filename", "upload"))[:512]
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > most:
            raise RequestTooLarge(f"the file has {declared} bytes; at most {most} are accepted")
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > most:
                    raise RequestTooLarge(f"the file is larger than the {most} bytes accepted")
                body.write(chunk)
            results = await run_in_threadpool(store_upload, context.archive, name, body, limits)
        note_access(request, **audit_subject((r["study_uid"], r["patient_id"]) for r in results))
        return JSONResponse({"file": name, "results": results})

    return router
