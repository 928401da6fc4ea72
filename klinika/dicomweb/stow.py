"""STOW-RS: store instances sent as multipart/related (PS3.18 §10.5): Part-10 instances
(``application/dicom``), or metadata (``application/dicom+json``, ``application/dicom+xml``)
with bulk data parts, which :mod:`klinika.dicom.compose` turns into Part-10 instances."""

import asyncio
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive, StoreOutcome, StoreStatus, audit_subject
from klinika.auth.http import note_access
from klinika.auth.models import Principal
from klinika.auth.permissions import is_allowed
from klinika.config import Settings
from klinika.dicom.compose import BulkPart, compose_metadata_parts
from klinika.dicomweb.common import Guard, dicomweb_base, json_bytes, json_response
from klinika.dicomweb.multipart import BodyPart, MultipartReader
from klinika.dicomweb.negotiation import parse_accept
from klinika.errors import RejectReason, RequestTooLarge, UnsupportedMediaType

BATCH = 32
#: Bulk data parts of JSON/XML metadata larger than this wait for their metadata in a
#: temporary file: memory holds a request's small parts and one composed instance at most.
_BULK_IN_MEMORY = 64 * 1024
_DICOM = "application/dicom"
_JSON = "application/dicom+json"
_XML = "application/dicom+xml"
#: Root types of a STOW-RS request body (PS3.18 §10.5.1.2).
REQUEST_TYPES = (_DICOM, _JSON, _XML)
#: A batch is stored once it holds this many bytes, whatever its count.
BATCH_BYTES = 64 * 1024 * 1024

#: Failure Reason (0008,1197) for each rejection reason (PS3.4 Annex GG.4, PS3.18 §10.5.3):
#: every member of :class:`~klinika.errors.RejectReason` (a test keeps the table complete).
FAILURE_REASONS: dict[RejectReason, int] = {
    RejectReason.UNREADABLE: 0xC000,
    RejectReason.MISSING_ATTRIBUTE: 0xA900,
    RejectReason.INVALID_UID: 0xA900,
    RejectReason.INVALID_CHARSET: 0xA900,
    RejectReason.STUDY_MISMATCH: 0xA900,
    RejectReason.UNSUPPORTED_TRANSFER_SYNTAX: 0xC122,
    RejectReason.UNSUPPORTED_MEDIA_TYPE: 0xC000,
    RejectReason.DUPLICATE: 0x0111,
    RejectReason.STORAGE_FULL: 0xA700,
    RejectReason.TOO_LARGE: 0xA700,
    RejectReason.STORAGE_UNAVAILABLE: 0xA700,
    RejectReason.NOT_AUTHORIZED: 0x0124,
    RejectReason.UNSUPPORTED_DOCUMENT: 0xC000,
    RejectReason.PATIENT_MISMATCH: 0xA900,
}
#: Failure Reason of a rejection without a reason (``Archive.store`` always gives one).
PROCESSING_FAILURE = 0x0110


def failure_reason(reason: RejectReason | None) -> int:
    """The Failure Reason (0008,1197) of a rejected instance."""
    return PROCESSING_FAILURE if reason is None else FAILURE_REASONS[reason]


def _reference(outcome: StoreOutcome, base: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [outcome.sop_class_uid]},
        "00081155": {"vr": "UI", "Value": [outcome.sop_instance_uid]},
    }
    if outcome.accepted:
        url = (
            f"{base}/studies/{outcome.study_uid}/series/{outcome.series_uid}"
            f"/instances/{outcome.sop_instance_uid}"
        )
        item["00081190"] = {"vr": "UR", "Value": [url]}
        if outcome.warnings or outcome.status == StoreStatus.DUPLICATE:
            item["00081196"] = {"vr": "US", "Value": [0xB000]}  # coercion / warning
    else:
        item["00081197"] = {
            "vr": "US",
            "Value": [failure_reason(outcome.reason)],
        }
        if outcome.sop_class_uid is None:
            item.pop("00081150")
            item.pop("00081155")
    return item


def stow_response(
    outcomes: list[StoreOutcome], base: str, study_uid: str | None
) -> tuple[int, dict[str, Any]]:
    """The STOW-RS response data set and HTTP status (200 all, 202 some, 409 none stored;
    503 when none was stored because the blob store is down, so the client retries later)."""
    stored = [o for o in outcomes if o.accepted]
    failed = [o for o in outcomes if not o.accepted]
    body: dict[str, Any] = {}
    study = study_uid or (stored[0].study_uid if stored else None)
    if study and stored:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{study}"]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_reference(o, base) for o in stored]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_reference(o, base) for o in failed]}
        comments = "; ".join(o.message or o.reason or "rejected" for o in failed)
        body["00000902"] = {"vr": "LO", "Value": [comments[:1024]]}
    if not outcomes:
        return 400, body
    if not failed:  # PS3.18 §10.5.3: 202 when any stored instance carries a warning
        has_warnings = any(o.warnings or o.status == StoreStatus.DUPLICATE for o in stored)
        return (202 if has_warnings else 200), body
    if not stored and any(o.reason == RejectReason.STORAGE_UNAVAILABLE for o in failed):
        return 503, body
    return (202 if stored else 409), body


def _bulk_part(part: BodyPart, spooled: list[IO[bytes]]) -> BulkPart:
    """A bulk data part kept until the metadata is read at the end of the body: in memory
    when small, else in a temporary file (added to ``spooled``, which the request closes)."""
    ranges = parse_accept(part.content_type)
    syntax = ranges[0].params.get("transfer-syntax") if ranges else None
    if len(part.data) <= _BULK_IN_MEMORY:
        return BulkPart(part.media_type, part.data, syntax)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the request)
    spooled.append(spool)
    spool.write(part.data)
    return BulkPart(part.media_type, spool, syntax)


def _compose(
    metadata: list[BodyPart], bulk: dict[str, list[BulkPart]]
) -> Iterator[bytes | StoreOutcome]:
    """The Part-10 instances of the metadata parts one at a time, or a rejected outcome for
    each data set (or part) that cannot become one (PS3.18 §10.5.3: missing bulk data is a
    failure)."""
    for item in compose_metadata_parts([(p.media_type, p.data) for p in metadata], bulk):
        yield (
            item.part10
            if item.part10 is not None
            else StoreOutcome(
                StoreStatus.REJECTED,
                sop_class_uid=item.sop_class_uid,
                sop_instance_uid=item.sop_instance_uid,
                reason=item.error.reason if item.error else RejectReason.UNREADABLE,
                message=str(item.error),
            )
        )


def warning_header(outcomes: list[StoreOutcome]) -> dict[str, str]:
    """A ``Warning: 299`` header (PS3.18 §8.4.4, status report) saying what was accepted with
    a warning, for instance a UID with a leading zero; the items carry WarningReason 0xB000."""
    texts = [f"{o.sop_instance_uid}: {w}" for o in outcomes if o.accepted for w in o.warnings]
    if not texts:
        return {}
    text = "; ".join(texts)[:2000].replace("\\", "\\\\").replace('"', "'")
    text = "".join(c if c.isprintable() and ord(c) < 256 else "?" for c in text)
    return {"Warning": f'299 klinika "{text}"'}


def create_stow_router(archive: Archive, settings: Settings, guard: Guard) -> APIRouter:
    """The STOW-RS resources: images from roles that may store (``dicom:store``), derived
    objects (SR, KO, PR, SEG) also from readers (``dicom:annotate``)."""
    router = APIRouter()
    Storer = Annotated[Principal, Depends(guard("dicom:annotate", recorded_as="dicom:store"))]

    async def store(request: Request, study_uid: str | None, principal: Principal) -> Response:
        derived_only = not is_allowed(principal.role, "dicom:store")
        limit = settings.max_request_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"the body has {declared} bytes; at most {limit} are accepted")
        reader = MultipartReader(
            request.headers.get("content-type", ""),
            max_part_bytes=settings.max_instance_bytes,
            max_boundary=settings.max_multipart_boundary,
        )
        if reader.part_type not in REQUEST_TYPES:
            raise UnsupportedMediaType(
                f"STOW-RS accepts multipart/related of type {', '.join(REQUEST_TYPES)}"
            )
        metadata: list[BodyPart] = []  # JSON / XML data sets, built once the body has arrived
        bulk: dict[str, list[BulkPart]] = {}  # their bulk data, large parts in temporary files
        spooled: list[IO[bytes]] = []
        # Batches are stored while the rest of the body still arrives, one batch at a time (so
        # memory holds at most the batch being stored and the one being filled); each batch's
        # outcomes keep their place, so the response lists instances in the order sent.
        results: list[asyncio.Future[list[StoreOutcome]] | list[StoreOutcome]] = []
        batch: list[bytes] = []
        held = 0
        storing: asyncio.Future[list[StoreOutcome]] | None = None

        async def flush() -> None:
            nonlocal storing, held
            if not batch:
                return
            if storing is not None and not storing.done():
                await asyncio.wait([storing])
            storing = asyncio.ensure_future(
                run_in_threadpool(
                    archive.store_many, list(batch), study_uid=study_uid, derived_only=derived_only
                )
            )
            results.append(storing)
            batch.clear()
            held = 0

        received = 0
        refused: RequestTooLarge | None = None
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise RequestTooLarge(f"the body is larger than the {limit} bytes accepted")
                if refused is not None:
                    continue  # read the rest (and drop it) so the client gets our answer
                try:
                    parts = reader.feed(chunk)
                except RequestTooLarge as exc:
                    refused = exc
                    continue
                for part in parts:
                    part_type, data = part.media_type, part.data
                    if part_type in (_JSON, _XML) and reader.part_type != _DICOM:
                        metadata.append(part)
                        continue
                    if part_type != _DICOM:
                        if reader.part_type != _DICOM and part.location:
                            bulk.setdefault(part.location, []).append(_bulk_part(part, spooled))
                            continue
                        message = f"a part of type {part_type} is not {reader.part_type}"
                        results.append(
                            [
                                StoreOutcome(
                                    StoreStatus.REJECTED,
                                    reason=RejectReason.UNSUPPORTED_MEDIA_TYPE,
                                    message=message,
                                )
                            ]
                        )
                        continue
                    batch.append(data)
                    held += len(data)
                    if len(batch) >= BATCH or held >= BATCH_BYTES:
                        await flush()
            if refused is not None:
                raise refused
            reader.close()
            if metadata:
                await flush()
                composed = _compose(metadata, bulk)
                while (item := await run_in_threadpool(next, composed, None)) is not None:
                    if isinstance(item, StoreOutcome):
                        results.append([item])
                        continue
                    batch.append(item)
                    held += len(item)
                    if len(batch) >= BATCH or held >= BATCH_BYTES:
                        await flush()
        finally:
            await flush()
            settled = [r if isinstance(r, list) else await r for r in results]
            for spool in spooled:
                spool.close()
        outcomes = [outcome for group in settled for outcome in group]
        note_access(request, **audit_subject((o.study_uid, o.patient_id) for o in outcomes))
        base = dicomweb_base(request, settings.public_base_url)
        status, body = stow_response(outcomes, base, study_uid)
        return json_response(
            request, json_bytes(body), status_code=status, headers=warning_header(outcomes)
        )

    @router.post("/studies", summary="Store instances")
    async def store_instances(request: Request, principal: Storer) -> Response:
        return await store(request, None, principal)

    @router.post("/studies/{study_uid}", summary="Store instances into a study")
    async def store_study_instances(
        request: Request, study_uid: str, principal: Storer
    ) -> Response:
        return await store(request, study_uid, principal)

    return router
