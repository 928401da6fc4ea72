"""Upload: files, folders and ZIP archives dropped in the browser, stored through the one
ingest path. The page sends one file per request (with progress); each answer lists what
happened to every instance in it (stored, duplicate, rejected with the reason)."""

import lzma
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive, StoreOutcome
from klinika.auth.models import Principal
from klinika.web.pages.context import PageContext

#: Bodies up to this size stay in memory; larger ones (ZIPs) spill to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
#: ZIP members go to the archive in batches of at most this many files and bytes.
BATCH = 16
BATCH_BYTES = 64 * 1024 * 1024
#: ``Archive.store`` takes an instance as bytes: a larger file or member is refused, not read
#: (a ZIP member's declared size is checked first, and zipfile stops reading at that size).
MAX_INSTANCE_BYTES = 1024 * 1024 * 1024


def outcome_json(name: str, outcome: StoreOutcome) -> dict[str, Any]:
    return {
        "name": name,
        "status": outcome.status,
        "reason": outcome.reason,
        "message": outcome.message,
        "study_uid": outcome.study_uid,
    }


def _too_large(size: int) -> StoreOutcome:
    return StoreOutcome(
        "rejected",
        reason="too-large",
        message=f"{size} bytes is more than the {MAX_INSTANCE_BYTES} bytes a file may have here",
    )


#: What reading a damaged, encrypted or oddly compressed member raises.
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
)


def _read_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | StoreOutcome:
    """A member's bytes, or why it cannot be read (too large, encrypted, corrupt)."""
    if info.file_size > MAX_INSTANCE_BYTES:
        return _too_large(info.file_size)
    try:
        return bundle.read(info)
    except _UNREADABLE as exc:
        return StoreOutcome("rejected", reason="unreadable", message=f"ZIP member: {exc}")


def _member_batches(
    bundle: zipfile.ZipFile,
) -> Iterator[list[tuple[str, bytes | StoreOutcome]]]:
    """The members (folders aside) in batches small enough to hold in memory."""
    batch: list[tuple[str, bytes | StoreOutcome]] = []
    held = 0
    for info in bundle.infolist():
        if info.is_dir():
            continue
        item = _read_member(bundle, info)
        batch.append((info.filename, item))
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
            for batch in _member_batches(bundle):
                readable = [item for _, item in batch if isinstance(item, bytes)]
                stored = iter(archive.store_many(readable) if readable else [])
                for member, item in batch:
                    outcome = next(stored) if isinstance(item, bytes) else item
                    results.append(outcome_json(f"{name}/{member}", outcome))
        return results
    size = body.seek(0, 2)
    if size > MAX_INSTANCE_BYTES:
        return [outcome_json(name, _too_large(size))]
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
