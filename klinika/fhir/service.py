"""The FHIR read API's one service: searches become :class:`Query` objects of the ONE query
engine (``Archive.search`` / ``Archive.count``), answers become resources.

Nothing here opens a blob or writes SQL: patients, studies, series and instances come from
the index through the query engine, reports from :class:`~klinika.reports.ReportService`
(which records each report read as ``report:view``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from klinika.archive import Archive
from klinika.audit import Actor
from klinika.dicom.attributes import Level
from klinika.errors import InvalidQuery, NotFound
from klinika.fhir import resources
from klinika.fhir.ids import patient_key, study_uid_of, text_key
from klinika.fhir.orders import order_details
from klinika.fhir.params import (
    DICOM_MODALITY_SYSTEM,
    DICOM_UID_SYSTEM,
    Search,
    date_range,
    patient_reference,
    token,
    token_list,
)
from klinika.fhir.resources import Json, SignedReport, StudyContent, first, text
from klinika.index.query import Query
from klinika.reports import ReportService
from klinika.reports.states import ReportState
from klinika.workflow import Schedule, StepFilter, StepStatus

PATIENT_PARAMS = ("_id", "identifier", "name", "family", "given", "birthdate", "gender")
IMAGING_STUDY_PARAMS = ("_id", "patient", "subject", "identifier", "started", "modality")
DIAGNOSTIC_REPORT_PARAMS = ("_id", "patient", "subject", "status")
SERVICE_REQUEST_PARAMS = (
    "_id",
    "patient",
    "subject",
    "identifier",
    "status",
    "occurrence",
    "modality",
)
#: ServiceRequest.status -> the scheduled step states it stands for.
_STEP_STATES: dict[str, tuple[StepStatus, ...]] = {
    "active": (StepStatus.SCHEDULED, StepStatus.ARRIVED, StepStatus.IN_PROGRESS),
    "completed": (StepStatus.COMPLETED,),
    "revoked": (StepStatus.DISCONTINUED,),
}
_REQUEST_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
#: How many steps one ServiceRequest search reads (pages are cut from them).
MAX_STEPS = 2000

_STUDY_INCLUDE = frozenset({"IssuerOfPatientID", "TimezoneOffsetFromUTC"})
_SERIES_INCLUDE = frozenset({"BodyPartExamined", "SeriesDate", "SeriesTime"})
_GENDERS = {"male": "M", "female": "F", "other": "O"}
#: DiagnosticReport.status values (R4 valueset-diagnostic-report-status); we publish two.
_REPORT_STATUSES = frozenset(
    {
        "registered",
        "partial",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
#: The report states we publish, whose codes are the DiagnosticReport statuses of the same name.
_PUBLISHED = frozenset({ReportState.FINAL, ReportState.AMENDED})


@dataclass
class Page:
    """One page of a search: the resources, how many matched in all, and the Patient IDs
    the page shows (for the access event)."""

    resources: list[Json]
    total: int
    patient_ids: list[str] = field(default_factory=list)


class _Nothing(Exception):
    """The search can match nothing (an empty date interval, an id that is no UID)."""


class FhirService:
    """Patient, ImagingStudy and DiagnosticReport reads and searches."""

    def __init__(self, archive: Archive, reports: ReportService, schedule: Schedule) -> None:
        self.archive = archive
        self.reports = reports
        self.schedule = schedule

    # ------------------------------------------------------------------ Patient
    def patient(self, resource_id: str) -> Json:
        """The Patient ``resource_id``.

        Raises
        ------
        NotFound
            When no patient of that id is held.
        """
        patient_id, issuer = patient_key(resource_id)
        match = self._patient_match(patient_id, issuer)
        query = Query(Level.PATIENT, match, include=frozenset({"IssuerOfPatientID"}))
        for found in self.archive.search(query).matches:
            resource = resources.patient(found)
            if resource["id"] == resource_id:
                return resource
        raise NotFound(f"Patient/{resource_id[:80]} is not known")

    def patients(self, search: Search) -> Page:
        """Patients matching ``search`` (identifier, name, family, given, birthdate, gender,
        _id), ordered by name."""
        try:
            match, fuzzy = self._patient_search(search)
        except _Nothing:
            return Page([], 0)
        query = Query(
            Level.PATIENT,
            match,
            include=frozenset({"IssuerOfPatientID"}),
            limit=search.count,
            offset=search.offset,
            fuzzy=fuzzy,
        )
        total = self.archive.count(query)
        found = self.archive.search(query).matches if search.count else []
        page = [resources.patient(m) for m in found]
        return Page(page, total, [text(m, "00100020") or "" for m in found])

    def _patient_search(self, search: Search) -> tuple[dict[str, str], bool]:
        match: dict[str, str] = {}
        resource_id = search.one("_id")
        if resource_id is not None:
            if "," in resource_id:
                raise InvalidQuery("_id: a list of patients (OR) is not supported")
            try:
                match.update(self._patient_match(*patient_key(resource_id)))
            except NotFound as exc:
                raise _Nothing from exc
        identifier = search.one("identifier")
        if identifier is not None:
            if "," in identifier:
                raise InvalidQuery("identifier: a list (OR) is not supported for patients")
            system, value = token(identifier)
            if system:  # our Patient identifiers carry no system: nothing else matches
                raise _Nothing
            if match.get("PatientID", value) != value:
                raise _Nothing
            match["PatientID"] = value
        name, family, given = search.one("name"), search.one("family"), search.one("given")
        for given_value in (name, family, given):
            if given_value is not None and any(c in given_value for c in "*?^\\"):
                raise InvalidQuery("names are matched as text: * ? and ^ are not allowed")
        if name is not None and (family is not None or given is not None):
            raise InvalidQuery("give either name, or family and/or given")
        if name is not None:
            match["PatientName"] = name
        elif family is not None or given is not None:
            match["PatientName"] = f"{family or ''}*" + (f"^{given}*" if given else "")
        birth = search.values.get("birthdate")
        if birth:
            dates = date_range("birthdate", birth)
            if dates is None:
                raise _Nothing
            match["PatientBirthDate"] = dates
        gender = search.one("gender")
        if gender is not None:
            codes = token_list(
                "gender", gender, frozenset({"http://hl7.org/fhir/administrative-gender"})
            )
            if len(codes) > 1:
                raise InvalidQuery("gender: a list (OR) is not supported")
            if codes[0] not in _GENDERS:
                raise InvalidQuery(f"gender must be one of {sorted(_GENDERS)}")
            match["PatientSex"] = _GENDERS[codes[0]]
        return match, name is not None

    @staticmethod
    def _patient_match(patient_id: str, issuer: str | None) -> dict[str, str]:
        # Patient IDs are matched as single values: a wildcard in one would widen the match
        if "*" in patient_id or "?" in patient_id or "\\" in patient_id:
            raise NotFound(f"no patient has the ID {patient_id[:64]!r}")
        match = {"PatientID": patient_id}
        if issuer:
            match["IssuerOfPatientID"] = issuer
        return match

    # ------------------------------------------------------------------ ImagingStudy
    def imaging_study(self, resource_id: str) -> Json:
        """The ImagingStudy ``resource_id`` (a Study Instance UID) with series and instances.

        Raises
        ------
        NotFound
            When the study is not held.
        """
        study_uid = study_uid_of(resource_id, "ImagingStudy")
        query = Query(Level.STUDY, {"StudyInstanceUID": study_uid}, include=_STUDY_INCLUDE)
        found = self.archive.search(query).matches
        if not found:
            raise NotFound(f"ImagingStudy/{study_uid} is not known")
        return resources.imaging_study(self._content(found[0]))

    def imaging_studies(self, search: Search) -> Page:
        """Studies matching ``search`` (patient/subject, identifier, started, modality, _id),
        newest first, each with its series and instances."""
        try:
            match = self._study_search(search)
        except _Nothing:
            return Page([], 0)
        query = Query(
            Level.STUDY,
            match,
            include=_STUDY_INCLUDE,
            limit=search.count,
            offset=search.offset,
            include_parents=True,
        )
        total = self.archive.count(query)
        found = self.archive.search(query).matches if search.count else []
        page = [resources.imaging_study(self._content(m)) for m in found]
        return Page(page, total, [text(m, "00100020") or "" for m in found])

    def _content(self, study: Json) -> StudyContent:
        study_uid = text(study, "0020000D") or ""
        scope = {"StudyInstanceUID": study_uid}
        series = self.archive.search(Query(Level.SERIES, scope, include=_SERIES_INCLUDE))
        instances = self.archive.search(Query(Level.IMAGE, scope))
        return StudyContent(study, series.matches, instances.matches)

    def _study_search(self, search: Search) -> dict[str, str]:
        match: dict[str, str] = {}
        self._add_patient(match, search)
        uids: set[str] | None = None
        accession: str | None = None
        for value in search.values.get("_id", []):
            try:
                ids = {study_uid_of(v, "ImagingStudy") for v in value.split(",")}
            except NotFound as exc:
                raise _Nothing from exc
            uids = ids if uids is None else uids & ids
        for value in search.values.get("identifier", []):
            found_uids, found_accession = _study_identifiers(value)
            if found_uids is not None:
                uids = found_uids if uids is None else uids & found_uids
            if found_accession is not None:
                if accession is not None and accession != found_accession:
                    raise _Nothing
                accession = found_accession
        if uids is not None:
            if not uids:
                raise _Nothing
            match["StudyInstanceUID"] = "\\".join(sorted(uids))
        if accession is not None:
            match["AccessionNumber"] = accession
        started = search.values.get("started")
        if started:
            dates = date_range("started", started)
            if dates is None:
                raise _Nothing
            match["StudyDate"] = dates
        modality = search.one("modality")
        if modality is not None:
            codes = token_list("modality", modality, frozenset({DICOM_MODALITY_SYSTEM}))
            if any(not c.isalnum() or len(c) > 16 for c in codes):
                raise InvalidQuery("modality: codes are DICOM modalities such as CT or MR")
            match["ModalitiesInStudy"] = "\\".join(codes)
        return match

    def _add_patient(self, match: dict[str, str], search: Search) -> None:
        """The PatientID (and issuer) match of ``patient`` / ``subject``."""
        keys = [
            patient_reference(name, value)
            for name in ("patient", "subject")
            for value in search.values.get(name, [])
        ]
        if not keys:
            return
        if len(set(keys)) > 1:
            raise _Nothing  # AND of two patients
        try:
            match.update(self._patient_match(*keys[0]))
        except NotFound as exc:
            raise _Nothing from exc

    # ------------------------------------------------------------------ DiagnosticReport
    def diagnostic_report(
        self, resource_id: str, actor: Actor, *, source: str | None, origin: str
    ) -> Json:
        """The DiagnosticReport of study ``resource_id``: its newest signed version.

        Raises
        ------
        NotFound
            When the study has no signed report.
        """
        study_uid = study_uid_of(resource_id, "DiagnosticReport")
        studies = self._studies([study_uid])
        if study_uid not in studies:
            raise NotFound(f"DiagnosticReport/{study_uid} is not known")
        return self._report(studies[study_uid], actor, source, origin)

    def diagnostic_reports(
        self, search: Search, actor: Actor, *, source: str | None, origin: str
    ) -> Page:
        """Signed reports matching ``search`` (patient/subject, status, _id), newest
        signature first."""
        try:
            candidates = self._report_candidates(search)
            states = self._report_states(search)
        except _Nothing:
            return Page([], 0)
        uids, total = self.reports.published(
            candidates, states=states, limit=search.count, offset=search.offset
        )
        studies = self._studies(uids)
        page = [self._report(studies[uid], actor, source, origin) for uid in uids if uid in studies]
        return Page(page, total, [text(studies[u], "00100020") or "" for u in uids if u in studies])

    def _report_candidates(self, search: Search) -> list[str] | None:
        candidates: set[str] | None = None
        for value in search.values.get("_id", []):
            try:
                ids = {study_uid_of(v, "DiagnosticReport") for v in value.split(",")}
            except NotFound as exc:
                raise _Nothing from exc
            candidates = ids if candidates is None else candidates & ids
        patient: dict[str, str] = {}
        self._add_patient(patient, search)
        if patient:
            if candidates is not None:
                patient["StudyInstanceUID"] = "\\".join(sorted(candidates))
            found = self.archive.search(Query(Level.STUDY, patient)).matches
            candidates = {text(m, "0020000D") or "" for m in found}
        return None if candidates is None else sorted(candidates)

    @staticmethod
    def _report_states(search: Search) -> frozenset[ReportState]:
        states = set(_PUBLISHED)
        for value in search.values.get("status", []):
            codes = set(
                token_list(
                    "status", value, frozenset({"http://hl7.org/fhir/diagnostic-report-status"})
                )
            )
            unknown = codes - _REPORT_STATUSES
            if unknown:
                raise InvalidQuery(f"status {sorted(unknown)[0][:40]!r} is not a report status")
            states &= {state for state in _PUBLISHED if state.value in codes}
        if not states:
            raise _Nothing
        return frozenset(states)

    def _studies(self, study_uids: list[str]) -> dict[str, Json]:
        """Study-level matches (with their patient) of ``study_uids``, by UID."""
        if not study_uids:
            return {}
        query = Query(
            Level.STUDY, {"StudyInstanceUID": "\\".join(study_uids)}, include=_STUDY_INCLUDE
        )
        return {text(m, "0020000D") or "": m for m in self.archive.search(query).matches}

    def _report(self, study: Json, actor: Actor, source: str | None, origin: str) -> Json:
        study_uid = text(study, "0020000D") or ""
        view = self.reports.current(study_uid, actor, drafts=False, source=source)
        version = view.version
        return resources.diagnostic_report(
            SignedReport(
                study=study,
                number=version.number,
                state=version.state,
                language=version.language,
                conclusion=version.sections.get("impression", "").strip(),
                signed_at=version.signed_at,
                signed_by_name=version.signed_by_name,
                pdf_url=f"{origin}/api/studies/{study_uid}/report/pdf?version={version.number}",
            )
        )

    # ------------------------------------------------------------------ ServiceRequest
    def service_request(self, resource_id: str, actor: Actor, *, source: str | None) -> Json:
        """The ServiceRequest of scheduled step ``resource_id``.

        Raises
        ------
        NotFound
            When no step has that id.
        """
        step_id = text_key(resource_id, "ServiceRequest")
        return resources.service_request(self.schedule.get(step_id, actor, source=source))

    def create_service_request(self, resource: Any, actor: Actor, *, source: str | None) -> Json:
        """Schedule the procedure step a ServiceRequest orders (the one
        :meth:`Schedule.create`, audited there) and return it as we serve it.

        Raises
        ------
        InvalidOrder, InvalidStep
            A field is missing or malformed (nothing is scheduled).
        StepStateError
            Its accession number is taken.
        NotFound
            ``subject`` names a Patient we do not hold.
        """
        details = order_details(resource, self._held_patient)
        return resources.service_request(self.schedule.create(details, actor, source=source))

    def _held_patient(self, resource_id: str) -> tuple[str, str, str, str]:
        patient_id, issuer = patient_key(resource_id)
        query = Query(Level.PATIENT, self._patient_match(patient_id, issuer))
        for found in self.archive.search(query).matches:
            name = first(found, "00100010")
            return (
                text(found, "00100020") or patient_id,
                name.get("Alphabetic", "") if isinstance(name, dict) else "",
                text(found, "00100030") or "",
                text(found, "00100040") or "",
            )
        raise NotFound(f"Patient/{resource_id[:80]} is not known")

    def service_requests(self, search: Search, actor: Actor, *, source: str | None) -> Page:
        """Scheduled steps matching ``search`` (patient/subject, status, occurrence, modality,
        _id), earliest first; at most :data:`MAX_STEPS` are read (``total`` says so)."""
        try:
            wanted, states, step_ids = self._step_search(search)
        except _Nothing:
            return Page([], 0)
        if step_ids is not None:
            steps = []
            for step_id in sorted(step_ids):
                try:
                    steps.append(self.schedule.get(step_id, actor, source=source))
                except NotFound:
                    continue
        else:
            steps = self.schedule.search(wanted, actor, source=source)
        steps = [
            s
            for s in steps
            if s.status in states
            and (not wanted.modality or s.details.modality == wanted.modality)
            and (not wanted.date_from or s.details.start_date >= wanted.date_from)
            and (not wanted.date_to or s.details.start_date <= wanted.date_to)
        ]
        page = steps[search.offset : search.offset + search.count]
        return Page(
            [resources.service_request(s) for s in page],
            len(steps),
            [s.patient_id for s in page],
        )

    @staticmethod
    def _accession(search: Search) -> str:
        """The accession number of a ServiceRequest ``identifier`` (any system, one value)."""
        identifier = search.one("identifier")
        if identifier is None:
            return ""
        if "," in identifier:
            raise InvalidQuery("identifier: a list (OR) is not supported for service requests")
        value = token(identifier)[1]
        if not value or any(c in value for c in "*?\\"):
            raise InvalidQuery("identifier: an accession number, without * ? or \\")
        return value

    def _step_search(self, search: Search) -> tuple[StepFilter, set[StepStatus], set[str] | None]:
        patient: dict[str, str] = {}
        self._add_patient(patient, search)
        states = {state for group in _STEP_STATES.values() for state in group}
        for value in search.values.get("status", []):
            system = frozenset({"http://hl7.org/fhir/request-status"})
            codes = set(token_list("status", value, system))
            unknown = codes - _REQUEST_STATUSES
            if unknown:
                raise InvalidQuery(f"status {sorted(unknown)[0][:40]!r} is not a request status")
            states &= {state for code in codes for state in _STEP_STATES.get(code, ())}
        if not states:
            raise _Nothing
        low = high = ""
        occurrence = search.values.get("occurrence")
        if occurrence:
            dates = date_range("occurrence", occurrence)
            if dates is None:
                raise _Nothing
            low, dash, high = dates.partition("-")
            high = high if dash else low
        modality = search.one("modality")
        modalities: list[str] = []
        if modality:
            modalities = token_list("modality", modality, frozenset({DICOM_MODALITY_SYSTEM}))
        if len(modalities) > 1:
            raise InvalidQuery("modality: a list (OR) is not supported for service requests")
        step_ids: set[str] | None = None
        for value in search.values.get("_id", []):
            try:
                ids = {text_key(v, "ServiceRequest") for v in value.split(",")}
            except NotFound as exc:
                raise _Nothing from exc
            step_ids = ids if step_ids is None else step_ids & ids
        wanted = StepFilter(
            date_from=low or "",
            date_to=high or "",
            modality=modalities[0] if modalities else "",
            patient_id=patient.get("PatientID", ""),
            accession_number=self._accession(search),
            limit=MAX_STEPS,
        )
        return wanted, states, step_ids


def _study_identifiers(value: str) -> tuple[set[str] | None, str | None]:
    """An ImagingStudy ``identifier`` value: Study Instance UIDs (``urn:dicom:uid|urn:oid:…``,
    or a bare ``urn:oid:…``; a comma list is OR) or one accession number (any other system)."""
    uids: set[str] = set()
    accessions: set[str] = set()
    for item in value.split(","):
        system, code = token(item)
        if system == DICOM_UID_SYSTEM or code.startswith("urn:oid:"):
            try:
                uids.add(study_uid_of(code.removeprefix("urn:oid:"), "ImagingStudy"))
            except NotFound:
                continue  # not a UID: it names no study
        elif code:
            accessions.add(code)
    if accessions and (uids or len(accessions) > 1):
        raise InvalidQuery("identifier: an OR list of accession numbers is not supported")
    if "*" in "".join(accessions) or "?" in "".join(accessions):
        raise InvalidQuery("identifier: * and ? are not allowed in an accession number")
    if accessions:
        return None, accessions.pop()
    return uids, None
