"""QIDO-RS: search for studies, series and instances (PS3.18 §10.6)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive import Archive
from klinika.config import Settings
from klinika.dicom.attributes import Level
from klinika.dicomweb.common import Guard, dicomweb_base, json_response
from klinika.dicomweb.negotiation import accepts_json
from klinika.errors import InvalidQuery
from klinika.index.query import Query

_CONTROL = {"limit", "offset", "fuzzymatching", "includefield", "orderby"}
#: How long a search may hold the event loop before it is redone in a worker thread. Most
#: searches (a study list on SQLite) take well under a millisecond, less than the thread hop
#: they would otherwise pay (about 0.2 ms of CPU per request, and the wake-ups' latency).
INLINE_SECONDS = 0.003
#: How fuzzy matching cuts a person name into words (index.matching does the same).
_WORDS = re.compile(r"[\s^,=]+")


def parse_query(request: Request, level: Level, settings: Settings, scope: dict[str, str]) -> Query:
    """Turn QIDO-RS query parameters into a :class:`Query` (values already URL-decoded).

    References
    ----------
    PS3.18 §8.3.4 (query parameters), §8.3.4.4 (includefield), §8.3.4.5 (fuzzymatching).
    """
    params = request.query_params
    match: dict[str, str] = {}
    include: set[str] = set()
    include_all = False
    for key in params:
        values = params.getlist(key)
        if key == "includefield":
            for value in values:
                for field in value.split(","):
                    field = field.strip()
                    if field == "all":
                        include_all = True
                    elif field:
                        include.add(field)
        elif key not in _CONTROL:
            match[key] = "\\".join(values)
    match.update(scope)
    limit = _integer(params.get("limit"), "limit", settings.qido_default_limit)
    limit = min(limit, settings.qido_max_limit)
    offset = _integer(params.get("offset"), "offset", 0)
    if offset > settings.qido_max_offset:
        raise InvalidQuery(
            f"offset must be at most {settings.qido_max_offset} (setting qido_max_offset); "
            "narrow the search instead"
        )
    fuzzy = params.get("fuzzymatching", "false").lower() == "true"
    if fuzzy:
        for key, value in match.items():
            words = [w for w in _WORDS.split(value) if w]
            if len(words) > settings.qido_max_fuzzy_words:
                raise InvalidQuery(
                    f"{key}: at most {settings.qido_max_fuzzy_words} words with fuzzy matching "
                    "(setting qido_max_fuzzy_words)"
                )
    return Query(
        level=level,
        match=match,
        include="all" if include_all else frozenset(include),
        limit=limit,
        offset=offset,
        fuzzy=fuzzy,
        include_parents=not scope,
        strict=True,
    )


def _integer(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidQuery(f"{name} must be a whole number, not {raw[:32]!r}") from exc
    if value < 0:
        raise InvalidQuery(f"{name} must not be negative")
    return value


def create_qido_router(archive: Archive, settings: Settings, guard: Guard) -> APIRouter:
    """The QIDO-RS resources."""
    router = APIRouter(dependencies=[Depends(guard("dicom:read"))])

    async def answer(request: Request, level: Level, scope: dict[str, str]) -> Response:
        accepts_json(request.headers.get("accept"))
        query = parse_query(request, level, settings, scope)
        base = dicomweb_base(request, settings.public_base_url)
        # inline when it is quick (a local index, a bounded answer, the SQL done within
        # INLINE_SECONDS), else in a thread: a long search never holds the event loop
        result = archive.quick_search_json(query, INLINE_SECONDS, retrieve_base=base)
        if result is None:
            result = await run_in_threadpool(archive.search_json, query, retrieve_base=base)
        headers = {}
        if result.more:
            headers["Warning"] = (
                '299 klinika "There are more results than the limit; '
                'ask again with a larger offset"'
            )
        return json_response(request, result.body, headers=headers)

    @router.get("/studies", summary="Search for studies")
    async def search_studies(request: Request) -> Response:
        return await answer(request, Level.STUDY, {})

    @router.get("/series", summary="Search for series in all studies")
    async def search_all_series(request: Request) -> Response:
        return await answer(request, Level.SERIES, {})

    @router.get("/instances", summary="Search for instances in all studies")
    async def search_all_instances(request: Request) -> Response:
        return await answer(request, Level.IMAGE, {})

    @router.get("/studies/{study_uid}/series", summary="Search for series of a study")
    async def search_series(request: Request, study_uid: str) -> Response:
        return await answer(request, Level.SERIES, {"StudyInstanceUID": study_uid})

    @router.get("/studies/{study_uid}/instances", summary="Search for instances of a study")
    async def search_study_instances(request: Request, study_uid: str) -> Response:
        return await answer(request, Level.IMAGE, {"StudyInstanceUID": study_uid})

    @router.get(
        "/studies/{study_uid}/series/{series_uid}/instances",
        summary="Search for instances of a series",
    )
    async def search_instances(request: Request, study_uid: str, series_uid: str) -> Response:
        scope = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid}
        return await answer(request, Level.IMAGE, scope)

    return router
