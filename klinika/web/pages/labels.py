"""What people read instead of codes: audit actions and outcomes in the user's language (the
audit page's action filter and table, the page a role may not open)."""

from __future__ import annotations

import re

from klinika.audit import Outcome
from klinika.i18n import N_

#: audit action code -> label (codes not listed are shown as they are)
ACTION_LABELS = {
    "auth:login": N_("Login"),
    "auth:logout": N_("Logout"),
    "account:self": N_("Own account"),
    "dicom:read": N_("Images viewed or searched"),
    "dicom:store": N_("Images stored"),
    "dicom:annotate": N_("Annotations stored"),
    "dicom:delete": N_("Images deleted"),
    "dicom:export": N_("Images exported"),
    "dicom:echo": N_("DICOM echo"),
    "dicom:find": N_("DICOM query (C-FIND)"),
    "dicom:move": N_("DICOM retrieve (C-MOVE)"),
    "dicom:get": N_("DICOM retrieve (C-GET)"),
    "dicom:associate": N_("DICOM association"),
    "report:view": N_("Report viewed"),
    "report:read": N_("Reports read"),
    "report:read_draft": N_("Draft reports read"),
    "report:write": N_("Reports written"),
    "report:save": N_("Report draft saved"),
    "report:sign": N_("Report signed"),
    "report:amend": N_("Report amendment started"),
    "report:pdf": N_("Report PDF made"),
    "user:manage": N_("User management"),
    "user:create": N_("User created"),
    "user:update": N_("User changed"),
    "user:password": N_("Password changed"),
    "user:unlock": N_("Login lockout lifted"),
    "session:revoke": N_("Session ended"),
    "audit:read": N_("Audit trail read"),
    "audit:verify": N_("Audit chain verified"),
    "backup:manage": N_("System maintenance"),
    "backup:create": N_("Backup made"),
    "backup:verify": N_("Backup verified"),
    "backup:restore": N_("Backup restored"),
    "backup:prune": N_("Old backups removed"),
    "backup:drill": N_("Restore drill"),
    "storage:migrate": N_("Storage migrated"),
}
#: audit outcome -> label
OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.SUCCESS: N_("success"),
    Outcome.FAILURE: N_("failure"),
    Outcome.DENIED: N_("denied"),
}

_BROWSERS = (  # the first that matches names the browser (Edge and Opera also say Chrome)
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"OPR/(\d+)")),
    ("Firefox", re.compile(r"Firefox/(\d+)")),
    ("Chromium", re.compile(r"Chromium/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


def browser_summary(user_agent: str | None) -> str:
    """``Chrome 120 · Linux`` from a User-Agent header; the client's name for other programs
    (``python-requests``, ``curl``); "" when there is none. The header is untrusted text:
    only the names above and digits come out of it, or its first word cut short."""
    if not user_agent:
        return ""
    browser = next(
        (f"{name} {hit.group(1)}" for name, rule in _BROWSERS if (hit := rule.search(user_agent))),
        None,
    )
    system = next((name for name, rule in _SYSTEMS if rule.search(user_agent)), None)
    if browser is None:
        first = user_agent.split(" ", 1)[0].split("/", 1)[0]
        return re.sub(r"[^\w.-]", "", first)[:32]
    if "HeadlessChrome" in user_agent:
        browser = browser.replace("Chrome", "Chrome (headless)")
    return f"{browser} · {system}" if system else browser
