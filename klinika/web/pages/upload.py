"""Upload: files, folders and ZIP archives dropped in the browser, stored through the one
ingest path. The page sends one file per request (with progress); each answer lists what
happened to every instance in it (stored, duplicate, rejected with the reason)."""

import tempfile
import zipfile
from itertools import islice
from pathlib import Path
from typing import IO, Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive, StoreOutcome
from klinika.archive.sources import iter_sources
from klinika.auth.models import Principal
from klinika.web.pages.context import PageContext

#: Bodies up to this size stay in memory; larger ones (ZIPs) spill to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
BATCH = 16


def outcome_json(name: str, outcome: StoreOutcome) -> dict[str, Any]:
    return {
        "name": name,
        "status": outcome.status,
        "reason": outcome.reason,
        "message": outcome.message,
        "study_uid": outcome.study_uid,
    }


def store_upload(archive: Archive, name: str, body: IO[bytes]) -> list[dict[str, Any]]:
    """Store one uploaded file: a DICOM file, or a ZIP whose members are read one at a time."""
    body.seek(0)
    if zipfile.is_zipfile(body):
        body.seek(0)
        with tempfile.NamedTemporaryFile(suffix=".zip") as copy:
            while chunk := body.read(1 << 20):
                copy.write(chunk)
            copy.flush()
            results: list[dict[str, Any]] = []
            sources = iter_sources([Path(copy.name)])
            while batch := list(islice(sources, BATCH)):
                outcomes = archive.store_many(reader() for _, reader in batch)
                for (member, _), outcome in zip(batch, outcomes, strict=True):
                    results.append(outcome_json(f"{name}/{member.split('!', 1)[1]}", outcome))
            return results
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
        return JSONResponse({"file": name, "results": results})

    return router
