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

from klinika.archive import Archive, StoreOutcome, audit_subject, sources
from klinika.archive.sources import Item, store_items, too_large, zip_members
from klinika.auth.http import note_access
from klinika.auth.models import Principal
from klinika.web.pages.context import PageContext

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


def store_upload(archive: Archive, name: str, body: IO[bytes]) -> list[dict[str, Any]]:
    """Store one uploaded file: a DICOM file, or a ZIP whose members are read a batch at a time.

    Every file gets an outcome; a member that cannot be read is rejected with its reason and
    the others go on. ``body`` is untrusted (any bytes a user dropped).
    """
    body.seek(0)
    if zipfile.is_zipfile(body):
        body.seek(0)
        results: list[dict[str, Any]] = []
        with zipfile.ZipFile(body) as bundle:
            for batch in _batches(zip_members(bundle)):
                outcomes = store_items(archive, [item for _, item in batch])
                for (member, _), outcome in zip(batch, outcomes, strict=True):
                    results.append(outcome_json(f"{name}/{member}", outcome))
        return results
    size = body.seek(0, 2)
    if size > sources.MAX_INSTANCE_BYTES:
        return [outcome_json(name, too_large(size))]
    body.seek(0)
    return [outcome_json(name, archive.store(body.read()))]


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    Storer = Annotated[Principal, Depends(context.guard("dicom:store"))]

    @router.get("/upload")
    def upload_page(request: Request, _: Storer) -> Response:
        return context.pages.render(request, "upload/index.html", active="upload")

    @router.post("/upload/files")
    async def upload_file(request: Request, _: Storer) -> Response:
        """The request body is one file (``X-Filename`` names it); streamed to a spool."""
        name = unquote(request.headers.get("x-filename", "upload"))[:512]
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            async for chunk in request.stream():
                body.write(chunk)
            results = await run_in_threadpool(store_upload, context.archive, name, body)
        note_access(request, **audit_subject((r["study_uid"], r["patient_id"]) for r in results))
        return JSONResponse({"file": name, "results": results})

    return router
