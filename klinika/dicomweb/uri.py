"""WADO-URI: ``/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`` (PS3.18 §9).

References
----------
PS3.18 §9.1.2 (the query parameters), §9.1.2.2.4 (``anonymize``: PS3.15 Annex E, only with
``contentType=application/dicom``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

from fastapi import APIRouter, Depends, Request, Response
from pydicom import dcmread

from klinika.archive import Archive, InstanceRecord
from klinika.dicom import render
from klinika.dicom.deidentify import Deidentifier
from klinika.dicom.transcode import transcode
from klinika.dicomweb.common import Guard
from klinika.errors import InvalidQuery, NotAcceptable, NotFound

#: Encapsulated Document and its MIME type (PS3.3 C.24.2), as tags in the stored DICOM JSON.
_DOCUMENT_TAG = "00420011"
_MIME_TAG = "00420012"


def _number(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """A positive whole-number parameter, or a 400 naming it."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidQuery(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


def _decimal(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be a number, not {raw!r}") from None


def _document_type(record: InstanceRecord) -> str | None:
    """The MIME type of an Encapsulated Document instance (None for anything else)."""
    metadata = json.loads(record.metadata_json)
    if _DOCUMENT_TAG not in metadata:
        return None
    values = metadata.get(_MIME_TAG, {}).get("Value") or ["application/octet-stream"]
    return str(values[0])


def create_wado_uri_router(archive: Archive, guard: Guard) -> APIRouter:
    """The WADO-URI resource at ``/wado``."""
    router = APIRouter(dependencies=[Depends(guard("dicom:read"))])

    @router.get("/wado", summary="WADO-URI retrieve")
    def wado(request: Request) -> Response:
        params = request.query_params
        if params.get("requestType") != "WADO":
            raise InvalidQuery("requestType must be WADO")
        missing = [k for k in ("studyUID", "seriesUID", "objectUID") if not params.get(k)]
        if missing:
            raise InvalidQuery(f"missing parameter(s): {', '.join(missing)}")
        anonymize = params.get("anonymize")
        if anonymize not in (None, "yes"):
            raise InvalidQuery("anonymize takes the value yes")
        record = archive.instances(params["studyUID"], params["seriesUID"], params["objectUID"])[0]
        wanted = [t.strip() for t in params.get("contentType", "image/jpeg").split(",")]
        if "application/dicom" in wanted:
            return _dicom(archive, record, params.get("transferSyntax"), anonymize == "yes")
        if anonymize:
            raise InvalidQuery("anonymize is allowed only with contentType=application/dicom")
        document_type = _document_type(record)
        if document_type is not None:
            if document_type not in wanted and "*/*" not in wanted:
                raise NotAcceptable(f"this instance is a document of type {document_type}")
            return _document(archive, record, document_type)
        return _rendered(archive, record, params, wanted)

    return router


def _document(archive: Archive, record: InstanceRecord, media_type: str) -> Response:
    """The encapsulated document itself, sandboxed: a stored document must never run as a page
    of our origin."""
    document = dcmread(io.BytesIO(archive.read(record))).EncapsulatedDocument
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(bytes(document), media_type=media_type, headers=headers)


def _dicom(
    archive: Archive, record: InstanceRecord, syntax: str | None, anonymize: bool
) -> Response:
    data = archive.read(record)
    if syntax and syntax != record.transfer_syntax:
        data = transcode(data, syntax)  # CannotTranscode is a 406 that says why
    if anonymize:
        data = Deidentifier().part10(data)
    headers = {"Cache-Control": "no-store"}
    return Response(data, media_type="application/dicom", headers=headers)


def _rendered(
    archive: Archive, record: InstanceRecord, params: Mapping[str, str], wanted: list[str]
) -> Response:
    media_type = next((t for t in wanted if t in render.SUPPORTED_MEDIA_TYPES), None)
    if media_type is None:
        raise NotAcceptable(f"contentType {params.get('contentType')} is not offered")
    center, width = _decimal(params, "windowCenter"), _decimal(params, "windowWidth")
    window = (center, width, "linear") if center is not None and width is not None else None
    frame = _number(params, "frameNumber", 1) or 1
    if frame > record.number_of_frames:
        raise NotFound(f"frameNumber {frame}: the instance has {record.number_of_frames} frame(s)")
    rows, columns = _number(params, "rows"), _number(params, "columns")
    viewport = (rows, columns) if rows and columns else None
    quality = _number(params, "imageQuality")
    if quality is not None and quality > 100:
        raise InvalidQuery("imageQuality must be between 1 and 100")
    options = render.RenderOptions(
        media_type=media_type, quality=quality, window=window, viewport=viewport
    )
    try:
        body = archive.render_frame(record, frame - 1, options)
    except render.RenderError as exc:
        raise NotAcceptable(str(exc)) from exc
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})
