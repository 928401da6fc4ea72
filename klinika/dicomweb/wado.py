"""WADO-RS: retrieve instances, metadata, frames, bulk data, rendered images, thumbnails.

References
----------
PS3.18 §10.4 (Retrieve transaction), §8.7.3 (media types and transfer syntaxes),
§9.5 (rendered resources), §10.4.1.1.2 (thumbnail).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any, cast

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive, InstanceRecord
from klinika.auth.http import GuardedEndpoint
from klinika.config import Settings
from klinika.dicom import render
from klinika.dicom.json import iter_bulk_elements, with_base
from klinika.dicom.transcode import (
    ENCODERS,
    FRAME_MEDIA_TYPES,
    MEDIA_TYPE_DEFAULT_SYNTAX,
    can_decode,
    decode_frame,
    frames_of,
    is_native,
    why_not,
)
from klinika.dicomweb.common import Guard, dicomweb_base, json_response
from klinika.dicomweb.multipart import (
    MultipartResponse,
    closing_delimiter,
    content_type,
    new_boundary,
    part_pieces,
)
from klinika.dicomweb.negotiation import (
    MultipartChoice,
    accepts_json,
    choose_multipart,
    parse_accept,
)
from klinika.dicomweb.ranges import bare_media_type, single_part
from klinika.dicomweb.transcoded import TranscodeCache
from klinika.errors import InvalidQuery, NotAcceptable, NotFound

_DICOM = "application/dicom"
_OCTET = "application/octet-stream"
_FRAME_TYPES = (_OCTET, *sorted(set(FRAME_MEDIA_TYPES.values())))
_IMMUTABLE = {"Cache-Control": "private, max-age=86400"}
#: Retrieve frames (PS3.18 §10.4.1.1.3), a plain ASGI route: the capabilities resource lists it
FRAMES_PATH = "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}"


#: Bulk data may be a stored document (an Encapsulated PDF, CDA, a 3D model) that came from a
#: modality or a STOW client: whoever opens its URL gets a download in a sandbox (no script,
#: no same-origin rights, nothing loaded), never a page of our origin. The viewer fetches it
#: by XHR, which these headers do not hinder.
BULK_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Content-Disposition": "attachment",
    "X-Content-Type-Options": "nosniff",
}


def _metadata(record: InstanceRecord) -> dict[str, Any]:
    value = json.loads(record.metadata_json)
    return value if isinstance(value, dict) else {}


def _dicom_plan(choices: list[MultipartChoice], records: list[InstanceRecord]) -> str | None:
    """Which transfer syntax to send: None = as stored, else the one to transcode to
    (PS3.18 §8.7.3.5.1: no transfer-syntax parameter means Explicit VR Little Endian)."""
    reasons: list[str] = []
    for choice in choices:
        wanted = choice.transfer_syntax or ExplicitVRLittleEndian
        if wanted == "*":
            return None
        if all(r.transfer_syntax == wanted for r in records):
            return None
        problems = [
            f"{r.sop_instance_uid}: {problem}"
            for r in records
            if (problem := why_not(r.transfer_syntax, wanted, _metadata(r)))
        ]
        if not problems:
            return wanted
        reasons.append(f"{wanted}: {problems[0]}")
    raise NotAcceptable(
        "the instances cannot be sent in the requested transfer syntax ("
        + "; ".join(reasons[:4])
        + "); ask with transfer-syntax=* to get them as stored"
    )


def _frame_part(record: InstanceRecord, choices: list[MultipartChoice]) -> tuple[str, str]:
    """(part Content-Type, how) for the frames of one instance: how is ``stored`` (byte
    ranges as stored), ``decode`` (to native pixels) or the transfer syntax to encode into."""
    stored = record.transfer_syntax
    reasons: list[str] = []
    for choice in choices:
        wanted = choice.transfer_syntax
        if is_native(stored):
            if choice.part_type == _OCTET and wanted in (None, "*", ExplicitVRLittleEndian):
                native = stored in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
                return f"{_OCTET}; transfer-syntax={ExplicitVRLittleEndian}", (
                    "stored" if native else "decode"
                )
        else:
            media = FRAME_MEDIA_TYPES.get(stored, _OCTET)
            if wanted == "*" or (choice.part_type == media and wanted in (None, stored)):
                return f"{media}; transfer-syntax={stored}", "stored"
            decodable = can_decode(stored)
            if (
                choice.part_type == _OCTET
                and wanted in (None, ExplicitVRLittleEndian)
                and decodable
            ):
                return f"{_OCTET}; transfer-syntax={ExplicitVRLittleEndian}", "decode"
        if choice.part_type in MEDIA_TYPE_DEFAULT_SYNTAX:  # a compressed frame we may encode
            target = wanted or MEDIA_TYPE_DEFAULT_SYNTAX[choice.part_type]
            if FRAME_MEDIA_TYPES.get(target) != choice.part_type:
                reasons.append(f"{target} is not a {choice.part_type} transfer syntax")
                continue
            problem = why_not(stored, target, _metadata(record))
            if target not in ENCODERS and problem is None:
                problem = f"frames are not encoded as {target} here"
            if problem is None:
                return f"{choice.part_type}; transfer-syntax={target}", target
            reasons.append(f"{target}: {problem}")
    detail = f" ({'; '.join(reasons[:4])})" if reasons else ""
    raise NotAcceptable(
        f"frames stored as {stored} cannot be sent as requested{detail}; "
        f"acceptable: {FRAME_MEDIA_TYPES.get(stored, _OCTET)}, application/octet-stream, "
        f"a media type with a transfer-syntax of {', '.join(ENCODERS)}, or transfer-syntax=*"
    )


def _frame_numbers(raw: str, most: int = 256) -> list[int]:
    """The frame numbers of a frame list (PS3.18 §10.4.1.1.3), at most ``most`` of them
    (setting ``max_frames_per_request``: one response holds every frame asked for)."""
    if raw.count(",") >= most:
        raise InvalidQuery(
            f"at most {most} frames per request (setting max_frames_per_request); "
            "ask for the others in further requests"
        )
    try:
        numbers = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidQuery(f"frame list {raw[:64]!r} must be numbers separated by commas") from exc
    if not numbers or any(n < 1 for n in numbers):
        raise InvalidQuery("frame numbers start at 1")
    return numbers


def _render_options(
    request: Request, default_viewport: tuple[int, int] | None = None
) -> render.RenderOptions:
    params = request.query_params
    accept = params.get("accept") or request.headers.get("accept")
    media_type = None
    for media in parse_accept(accept):
        wanted = media.media_type
        if wanted == "multipart/related":  # rendered study/series: the parts' type
            wanted = media.params.get("type", "image/jpeg").lower()
        if wanted in ("*/*", "image/*"):
            media_type = "image/jpeg"
        elif wanted in render.SUPPORTED_MEDIA_TYPES:
            media_type = wanted
        if media_type:
            break
    if media_type is None:
        raise NotAcceptable(
            f"rendered images are offered as {', '.join(render.SUPPORTED_MEDIA_TYPES)}"
        )
    window = None
    if params.get("window"):
        parts = params["window"].split(",")
        try:
            window = (float(parts[0]), float(parts[1]), parts[2] if len(parts) > 2 else "linear")
        except (ValueError, IndexError) as exc:
            raise InvalidQuery("window must be center,width[,function]") from exc
    viewport, letterbox, region = default_viewport, False, None
    if params.get("viewport"):
        width, height, region = _viewport(params["viewport"])
        viewport, letterbox = (height, width), True
    quality = None
    if params.get("quality"):
        try:
            quality = int(params["quality"])
        except ValueError as exc:
            raise InvalidQuery("quality must be a number from 1 to 100") from exc
        if not 1 <= quality <= 100:
            raise InvalidQuery("quality must be a number from 1 to 100")
    return render.RenderOptions(
        media_type=media_type,
        quality=quality,
        window=window,
        viewport=viewport,
        letterbox=letterbox,
        region=region,
    )


def _viewport(value: str) -> tuple[int, int, tuple[int, int, int, int] | None]:
    """``vw,vh[,sx,sy,sw,sh]`` (PS3.18 §8.3.5.1.3): the output width and height, and the
    source region (empty sx/sy mean 0; all four or none)."""
    parts = value.split(",")
    try:
        width, height = int(parts[0]), int(parts[1])
        region = None
        if len(parts) == 6:
            sx, sy, sw, sh = (int(p) if p else 0 for p in parts[2:])
            region = (sx, sy, sw, sh)
        elif len(parts) != 2:
            raise ValueError(value)
    except (ValueError, IndexError) as exc:
        raise InvalidQuery("viewport must be vw,vh or vw,vh,sx,sy,sw,sh") from exc
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise InvalidQuery("viewport width and height must be between 1 and 8192")
    return width, height, region


def create_wado_router(
    archive: Archive, settings: Settings, guard: Guard, transcoded: TranscodeCache
) -> APIRouter:
    """The WADO-RS resources; what they transcode goes through ``transcoded``."""
    router = APIRouter(dependencies=[Depends(guard("dicom:read"))])

    def retrieve(request: Request, study: str, series: str | None, sop: str | None) -> Response:
        records = archive.instances(study, series, sop)
        choices = choose_multipart(request.headers.get("accept"), (_DICOM,), _DICOM)
        target = _dicom_plan(choices, records)
        boundary = new_boundary()

        def part(record: InstanceRecord) -> tuple[str, bytes]:
            data = archive.read(record)
            if target is not None and record.transfer_syntax != target:
                return f"{_DICOM}; transfer-syntax={target}", transcoded.transcode(
                    record, data, target
                )
            return f"{_DICOM}; transfer-syntax={record.transfer_syntax}", data

        if sop is not None and bare_media_type(request.headers.get("accept"), (_DICOM,)):
            part_type, payload = part(records[0])  # one instance asked bare: single part
            return single_part(request, payload, part_type, _IMMUTABLE)

        async def body() -> AsyncIterator[bytes]:
            for record in records:  # one instance in memory at a time
                for piece in part_pieces(*await run_in_threadpool(part, record), boundary):
                    yield piece
            yield closing_delimiter(boundary)

        return StreamingResponse(
            body(),
            media_type=content_type(_DICOM, boundary),
            headers=_IMMUTABLE,
        )

    @router.get("/studies/{study}", summary="Retrieve a study")
    def retrieve_study(request: Request, study: str) -> Response:
        return retrieve(request, study, None, None)

    @router.get("/studies/{study}/series/{series}", summary="Retrieve a series")
    def retrieve_series(request: Request, study: str, series: str) -> Response:
        return retrieve(request, study, series, None)

    @router.get("/studies/{study}/series/{series}/instances/{sop}", summary="Retrieve an instance")
    def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
        return retrieve(request, study, series, sop)

    @router.get("/studies/{study}/metadata", summary="Study metadata")
    def study_metadata(request: Request, study: str) -> Response:
        accepts_json(request.headers.get("accept"))
        base = dicomweb_base(request, settings.public_base_url)
        bodies = [
            archive.series_metadata(study, s, base).body[1:-1] for s in archive.study_series(study)
        ]
        return json_response(request, b"[" + b",".join(b for b in bodies if b) + b"]")

    @router.get("/studies/{study}/series/{series}/metadata", summary="Series metadata")
    def series_metadata(request: Request, study: str, series: str) -> Response:
        accepts_json(request.headers.get("accept"))
        base = dicomweb_base(request, settings.public_base_url)
        document = archive.series_metadata(study, series, base)
        return json_response(request, document.body, gzipped=document.gzipped, etag=document.etag)

    @router.get(
        "/studies/{study}/series/{series}/instances/{sop}/metadata", summary="Instance metadata"
    )
    def instance_metadata(request: Request, study: str, series: str, sop: str) -> Response:
        accepts_json(request.headers.get("accept"))
        record = archive.instances(study, series, sop)[0]
        base = dicomweb_base(request, settings.public_base_url)
        body = with_base(("[" + record.metadata_json + "]").encode(), base)
        return json_response(request, body)

    async def retrieve_frames(request: Request) -> Response:
        # The hot path of every viewer, a plain ASGI endpoint behind the same guard as the
        # other routes (no dependency solving): the instance's record from the series' records
        # in memory, a byte-range read, done inline instead of paying a thread hop per frame.
        params = request.path_params
        sop = params["sop"]
        numbers = _frame_numbers(params["frames"], settings.max_frames_per_request)
        record = archive.instance(params["study"], params["series"], sop)
        choices = choose_multipart(request.headers.get("accept"), _FRAME_TYPES, _OCTET)
        part_type, how = _frame_part(record, choices)
        location = record.pixel_location
        if any(n > record.number_of_frames for n in numbers):
            raise NotFound(f"instance {sop} has {record.number_of_frames} frames")
        if how == "decode":
            data = await run_in_threadpool(archive.read, record)
            payloads = await run_in_threadpool(lambda: [decode_frame(data, n - 1) for n in numbers])
        elif how != "stored":
            data = await run_in_threadpool(archive.read, record)
            encoded = await run_in_threadpool(
                lambda: frames_of(transcoded.transcode(record, data, how))
            )
            payloads = [encoded[n - 1] for n in numbers]
        elif location is not None and location.frames is not None and len(numbers) <= 4:
            payloads = [archive.read_frame(record, n - 1) for n in numbers]
        else:
            payloads = await run_in_threadpool(
                lambda: [archive.read_frame(record, n - 1) for n in numbers]
            )
        if len(payloads) == 1 and bare_media_type(
            request.headers.get("accept"), (part_type.split(";")[0],)
        ):
            return single_part(request, payloads[0], part_type, _IMMUTABLE)
        return MultipartResponse(
            [(part_type, p) for p in payloads], part_type.split(";")[0], headers=_IMMUTABLE
        )

    router.add_route(
        FRAMES_PATH,
        # an ASGI app, which Starlette's Route takes as it is (FastAPI's hint names only
        # request handlers, which Starlette would wrap in one more layer)
        cast(Any, GuardedEndpoint(guard("dicom:read"), retrieve_frames)),
        methods=["GET"],
        name="retrieve_frames",
        include_in_schema=False,
    )

    @router.get(
        "/studies/{study}/series/{series}/instances/{sop}/bulk/{reference}",
        summary="Retrieve bulk data",
    )
    def retrieve_bulk(
        request: Request, study: str, series: str, sop: str, reference: str
    ) -> Response:
        record = archive.instances(study, series, sop)[0]
        data = archive.read(record)
        if reference == "pixeldata":
            payloads = [archive.read_frame(record, i) for i in range(record.number_of_frames)]
        else:
            try:
                index = int(reference)
                dataset = dcmread(io.BytesIO(data), stop_before_pixels=True)
                element = list(iter_bulk_elements(dataset))[index]
            except (ValueError, IndexError) as exc:
                raise NotFound(f"no bulk data {reference!r} in instance {sop}") from exc
            payloads = [bytes(element.value)]
        if len(payloads) == 1 and bare_media_type(request.headers.get("accept"), (_OCTET,)):
            return single_part(request, payloads[0], _OCTET, {**_IMMUTABLE, **BULK_HEADERS})
        return MultipartResponse(
            [(_OCTET, p) for p in payloads], _OCTET, headers={**_IMMUTABLE, **BULK_HEADERS}
        )

    def rendered(
        request: Request,
        record: InstanceRecord,
        frame_index: int,
        viewport: tuple[int, int] | None = None,
    ) -> Response:
        options = _render_options(request, viewport)
        if not 0 <= frame_index < record.number_of_frames:
            raise NotFound(f"instance {record.sop_instance_uid} has no frame {frame_index + 1}")
        try:
            image = archive.render_frame(record, frame_index, options)
        except render.RenderError as exc:
            raise NotAcceptable(str(exc)) from exc
        return Response(image, media_type=options.media_type, headers=_IMMUTABLE)

    def rendered_instances(request: Request, records: list[InstanceRecord]) -> Response:
        """Each instance with pixel data rendered (its first frame), as multipart/related
        (PS3.18 §9.5: rendered study and series)."""
        options = _render_options(request)
        images = []
        for record in records:
            if not record.has_pixel_data:
                continue  # SR, PDF, …: nothing to render
            try:
                images.append(archive.render_frame(record, 0, options))
            except render.RenderError as exc:
                raise NotAcceptable(f"{record.sop_instance_uid}: {exc}") from exc
        if not images:
            raise NotFound("there is no image to render")
        part_type = options.media_type
        return MultipartResponse([(part_type, i) for i in images], part_type, headers=_IMMUTABLE)

    @router.get("/studies/{study}/rendered", summary="Rendered study")
    def rendered_study(request: Request, study: str) -> Response:
        return rendered_instances(request, archive.instances(study))

    @router.get("/studies/{study}/series/{series}/rendered", summary="Rendered series")
    def rendered_series(request: Request, study: str, series: str) -> Response:
        return rendered_instances(request, archive.instances(study, series))

    @router.get(
        "/studies/{study}/series/{series}/instances/{sop}/rendered", summary="Rendered instance"
    )
    def rendered_instance(request: Request, study: str, series: str, sop: str) -> Response:
        return rendered(request, archive.instances(study, series, sop)[0], 0)

    @router.get(
        "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered",
        summary="Rendered frame",
    )
    def rendered_frame(
        request: Request, study: str, series: str, sop: str, frames: str
    ) -> Response:
        record = archive.instances(study, series, sop)[0]
        return rendered(request, record, _frame_numbers(frames)[0] - 1)

    def thumbnail(
        request: Request, records: list[InstanceRecord], frame_index: int | None = None
    ) -> Response:
        images = [r for r in records if r.pixel_location is not None or r.number_of_frames > 1]
        if not images:
            raise NotFound("there is no image to make a thumbnail of")
        record = images[len(images) // 2]
        index = record.number_of_frames // 2 if frame_index is None else frame_index
        return rendered(request, record, index, viewport=(128, 128))

    @router.get("/studies/{study}/thumbnail", summary="Study thumbnail")
    def study_thumbnail(request: Request, study: str) -> Response:
        for series in archive.study_series(study):
            try:
                return thumbnail(request, archive.instances(study, series))
            except NotFound:
                continue
        raise NotFound(f"study {study} has no image")

    @router.get("/studies/{study}/series/{series}/thumbnail", summary="Series thumbnail")
    def series_thumbnail(request: Request, study: str, series: str) -> Response:
        return thumbnail(request, archive.instances(study, series))

    @router.get(
        "/studies/{study}/series/{series}/instances/{sop}/thumbnail", summary="Instance thumbnail"
    )
    def instance_thumbnail(request: Request, study: str, series: str, sop: str) -> Response:
        return thumbnail(request, archive.instances(study, series, sop))

    @router.get(
        "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/thumbnail",
        summary="Frame thumbnail",
    )
    def frame_thumbnail(
        request: Request, study: str, series: str, sop: str, frames: str
    ) -> Response:
        number = _frame_numbers(frames)[0]
        return thumbnail(request, archive.instances(study, series, sop), number - 1)

    return router
