"""THE permission matrix: which role may do which action. Every check reads :data:`PERMISSIONS`.

Human roles are ``admin``, ``doctor`` and ``operator`` (design.md, "Roles"). ``modality`` is the
role of a known DICOM application entity (the DIMSE principal); what one AE may do is further
narrowed by its own entry in the known-AE list (:mod:`klinika.auth.peers`). ``interface`` is
the role of an HL7 sender (HIS/RIS) named in the ``hl7_senders`` setting.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    DOCTOR = "doctor"
    OPERATOR = "operator"
    MODALITY = "modality"
    INTERFACE = "interface"


#: Roles a user account can have (``modality`` is for DICOM peers only).
USER_ROLES = (Role.ADMIN, Role.DOCTOR, Role.OPERATOR)

_A, _D, _O, _M = Role.ADMIN, Role.DOCTOR, Role.OPERATOR, Role.MODALITY
_I = Role.INTERFACE

#: action -> roles allowed to do it. Edit here and nowhere else.
PERMISSIONS: dict[str, frozenset[Role]] = {
    # your own account: /api/auth/me, logout, own password, own language
    "account:self": frozenset({_A, _D, _O}),
    # view studies and images: QIDO, WADO, C-FIND, C-MOVE, C-GET
    "dicom:read": frozenset({_A, _D, _O, _M}),
    # upload / import / receive: STOW, the upload page, C-STORE
    "dicom:store": frozenset({_A, _O, _M}),
    # store what a reader makes while reading (SR measurements, key objects, presentation
    # states, segmentations): STOW accepts images too only from roles with dicom:store
    "dicom:annotate": frozenset({_A, _D, _O}),
    # delete studies, series, instances
    "dicom:delete": frozenset({_A}),
    # study management: edit patient/study attributes, merge patients or studies, split or
    # delete a series (klinika.archive.management)
    "study:manage": frozenset({_A}),
    # patient demographics and merges sent by the hospital's information system (HL7 ADT
    # A08 / A40), through the same study management path
    "patient:sync": frozenset({_I}),
    # C-ECHO: proves the association only, no data
    "dicom:echo": frozenset({_A, _D, _O, _M}),
    # put labels on studies and take them off (the worklist filters by them)
    "study:label": frozenset({_A, _D, _O}),
    # read final reports (operators read final reports only)
    "report:read": frozenset({_A, _D, _O}),
    # read drafts and amendments in progress
    "report:read_draft": frozenset({_A, _D}),
    # create and edit reports, export PDF
    "report:write": frozenset({_A, _D}),
    # sign (make final) and amend reports
    "report:sign": frozenset({_A, _D}),
    # manage users and sessions
    "user:manage": frozenset({_A}),
    # read and export the audit trail
    "audit:read": frozenset({_A}),
    # backups, restore, system maintenance
    "backup:manage": frozenset({_A}),
    # read scheduled procedure steps: /api/worklist, the schedule page, Modality Worklist C-FIND
    "workflow:read": frozenset({_A, _D, _O, _M}),
    # schedule, change and cancel procedure steps (the front desk)
    "workflow:schedule": frozenset({_A, _O, _I}),
    # report performed procedure steps (MPPS) and ask for storage commitment
    "workflow:perform": frozenset({_A, _O, _M}),
    # DICOM nodes in the console: add, edit, remove, test (C-ECHO)
    "node:manage": frozenset({_A}),
    # Send to… a DICOM node (a study or series leaves the archive): whoever reads images
    # hands them on, as in dcm4chee's and Orthanc Explorer 2's default roles
    "dicom:send": frozenset({_A, _D, _O}),
    # Query/Retrieve from a remote PACS: brings studies in, so the roles that may import
    "dicom:retrieve": frozenset({_A, _O}),
}

ACTIONS = frozenset(PERMISSIONS)


def is_allowed(role: str, action: str) -> bool:
    """True if ``role`` may do ``action``; unknown roles and actions are refused."""
    roles = PERMISSIONS.get(action)
    return roles is not None and role in roles
