"""WADO-URI: ``/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`` (PS3.18 §9)."""

from __future__ import annotations

import io

from fastapi import APIRouter, Depends, Request, Response
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from klinika.archive import Archive
from klinika.dicom import render
from klinika.dicom.transcode import to_explicit_little_endian
from klinika.dicomweb.common import Guard
from klinika.errors import InvalidQuery, NotAcceptable


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
        record = archive.instances(params["studyUID"], params["seriesUID"], params["objectUID"])[0]
        wanted = [t.strip() for t in params.get("contentType", "image/jpeg").split(",")]
        if "application/dicom" in wanted:
            data = archive.read(record)
            syntax = params.get("transferSyntax")
            if syntax and syntax != record.transfer_syntax:
                if syntax != ExplicitVRLittleEndian:
                    raise NotAcceptable(f"cannot transcode to {syntax}")
                data = to_explicit_little_endian(data)
            return Response(data, media_type="application/dicom")
        media_type = next((t for t in wanted if t in render.SUPPORTED_MEDIA_TYPES), None)
        if media_type is None:
            raise NotAcceptable(f"contentType {params.get('contentType')} is not offered")
        window = None
        if params.get("windowCenter") and params.get("windowWidth"):
            window = (float(params["windowCenter"]), float(params["windowWidth"]), "linear")
        frame = int(params.get("frameNumber", "1")) - 1
        viewport = None
        if params.get("rows") and params.get("columns"):
            viewport = (int(params["rows"]), int(params["columns"]))
        options = render.RenderOptions(media_type=media_type, window=window, viewport=viewport)
        dataset = dcmread(io.BytesIO(archive.read(record)))
        try:
            return Response(render.render_frame(dataset, frame, options), media_type=media_type)
        except render.RenderError as exc:
            raise NotAcceptable(str(exc)) from exc

    return router
