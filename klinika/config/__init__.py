"""Settings: one typed object, read once at start from ``KLINIKA_*`` variables and a TOML file.

Owns: :class:`Settings` and :func:`load_settings`. May import: nothing from klinika but errors.
Precedence: explicit overrides > environment > TOML file (``KLINIKA_CONFIG`` or ``--config``) >
defaults. Unknown keys in the TOML file are refused so that typos do not pass silently.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from klinika.errors import ConfigError


class DuplicatePolicy(StrEnum):
    """What ``Archive.store`` does with an instance whose SOP Instance UID it already holds."""

    KEEP = "keep"  # keep the stored one, answer success with a warning
    OVERWRITE = "overwrite"  # replace the stored one
    REJECT = "reject"  # refuse the new one (reason ``duplicate``)


#: argon2id cost of new password hashes: "production" always, "test" only for test suites.
PasswordHashProfile = Literal["production", "test"]
StorageKind = Literal["files", "s3"]
LogFormat = Literal["text", "json"]
LOG_STREAMS = ("stderr", "stdout", "none")
LOG_LEVELS = ("debug", "info", "warning", "error")
DIMSE_SERVICES = frozenset({"echo", "store", "find", "move", "get", "worklist", "mpps", "commit"})


@dataclasses.dataclass(frozen=True)
class RemoteAE:
    """A known DICOM application entity: a modality, workstation or other PACS.

    Written ``TITLE@HOST:PORT`` or ``TITLE@HOST:PORT/store,find`` (the services it may use on
    us; all by default), with a trailing ``+cert`` when it must come over DICOM TLS with a
    client certificate our CA signed (``client_certificate``); several are separated by spaces
    or semicolons in ``KLINIKA_MODALITIES``. In a TOML file, either such strings or
    ``[[modalities]]`` tables (see :meth:`from_table`). The address is also where C-MOVE sends
    instances for that title.
    """

    title: str
    host: str
    port: int
    services: frozenset[str] = DIMSE_SERVICES
    client_certificate: bool = False

    @classmethod
    def parse(cls, text: str) -> RemoteAE:
        text = text.strip()
        certified = text.endswith("+cert")
        spec, _, services = text.removesuffix("+cert").partition("/")
        title, at, address = spec.partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and title and host):
            raise ConfigError(
                f"a modality is written TITLE@HOST:PORT[/services][+cert], not {text!r}"
            )
        chosen = [s.strip() for s in services.split(",") if s.strip()] or sorted(DIMSE_SERVICES)
        remote = cls.checked(title, host, port, chosen, what=repr(text))
        return dataclasses.replace(remote, client_certificate=certified)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> RemoteAE:
        """A ``[[modalities]]`` TOML table: ``title``, ``host`` (an address or a network such
        as ``10.0.0.0/24``), ``port``, optional ``services`` (a list of echo/store/find/move/get;
        all when omitted), optional ``client_certificate`` (true: only over DICOM TLS with a
        client certificate signed by ``dimse_tls_ca``)."""
        what = repr(dict(table))
        unknown = set(table) - {"title", "host", "port", "services", "client_certificate"}
        if unknown:
            raise ConfigError(f"modality {what}: unknown keys {sorted(unknown)}")
        if not {"title", "host", "port"} <= set(table):
            raise ConfigError(f"modality {what}: title, host and port are required")
        services = table.get("services", sorted(DIMSE_SERVICES))
        if isinstance(services, str) or not isinstance(services, list | tuple) or not services:
            raise ConfigError(
                f"modality {what}: services must be a non-empty list (omit it for all)"
            )
        certified = table.get("client_certificate", False)
        if not isinstance(certified, bool):
            raise ConfigError(f"modality {what}: client_certificate must be true or false")
        remote = cls.checked(table["title"], table["host"], table["port"], services, what=what)
        return dataclasses.replace(remote, client_certificate=certified)

    @classmethod
    def checked(cls, title: Any, host: Any, port: Any, services: Any, *, what: str) -> RemoteAE:
        """A remote AE from loose values, or a :class:`ConfigError` naming ``what``."""
        title, host = str(title).strip(), str(host).strip()
        chosen = frozenset(str(s).strip() for s in services)
        if not chosen <= DIMSE_SERVICES or not 1 <= len(title) <= 16 or not host:
            raise ConfigError(
                f"modality {what}: bad AE title, host or services {sorted(chosen)} "
                f"(services are {', '.join(sorted(DIMSE_SERVICES))})"
            )
        try:
            number = int(port)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"modality {what}: the port must be a number") from exc
        if not 1 <= number <= 65535:
            raise ConfigError(f"modality {what}: the port must be between 1 and 65535")
        return cls(title, host, number, chosen)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything Klinika can be told. Field names map to ``KLINIKA_<NAME>`` variables."""

    data_dir: Path = Path("klinika-data")
    database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8042
    dimse_host: str = "127.0.0.1"
    dimse_port: int = 4242
    ae_title: str = "KLINIKA"
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP
    fsync: bool = True
    compress_storage: bool = False
    # blob storage: "files" (<data_dir>/blobs) or "s3" (any S3 API: AWS, MinIO, Ceph RGW,
    # SeaweedFS). The secret key comes from s3_secret_access_key or s3_secret_access_key_file.
    storage: StorageKind = "files"
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = dataclasses.field(default="", repr=False)
    s3_secret_access_key_file: str = ""
    s3_retry_seconds: float = 30.0  # how long failed requests are retried before giving up
    s3_multipart_mb: int = 16  # instances larger than this go up in parts
    qido_default_limit: int = 1000
    qido_max_limit: int = 10000
    metadata_cache_series: int = 256
    public_base_url: str = ""
    # auth: the JWT secret comes from here (KLINIKA_JWT_SECRET) or from jwt_secret_file
    # (default <data_dir>/secrets/jwt.key, created on first start); it is never shown.
    jwt_secret: str = dataclasses.field(default="", repr=False)
    jwt_secret_file: str = ""
    token_hours_admin: int = 24
    token_hours_user: int = 8
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    # each further lock of the same key doubles, up to this (never for good: see docs/security.md)
    login_lockout_max_seconds: int = 3600
    # failures of one account from every address (or from one address for every account)
    # before that account (or address) is slowed down too; its lock never exceeds
    # login_lockout_seconds, so a real user waits at most that long
    login_account_max_failures: int = 20
    # argon2id costs 64 MiB a hash: at most this many at once; the rest wait, then get 429
    login_max_concurrent_hashes: int = 2
    login_hash_wait_seconds: float = 5.0
    password_min_length: int = 12
    # addresses or networks (comma separated) allowed to set X-Forwarded-For / -Proto: the
    # reverse proxy in front of us. Empty: nobody, the TCP peer is the client.
    trusted_proxies: str = ""
    # request limits (HTTP): each exceeded one answers 413 or 400, see docs/security.md
    max_request_bytes: int = 4 * 1024**3
    max_instance_bytes: int = 256 * 1024**2
    max_frames_per_request: int = 256
    #: bytes of transcoded WADO-RS instances kept in memory per process (0: none)
    transcode_cache_bytes: int = 256 * 1024**2
    max_multipart_boundary: int = 200
    qido_max_offset: int = 10_000_000
    qido_max_fuzzy_words: int = 16
    zip_max_members: int = 100_000
    zip_max_total_bytes: int = 16 * 1024**3
    zip_max_ratio: int = 200
    password_hash_profile: PasswordHashProfile = "production"
    # audit: the key (default <data_dir>/secrets/audit.key, created on first start), signed
    # checkpoints of the chain's head beside it, and an optional syslog copy (IHE ATNA)
    audit_key_file: str = ""
    audit_syslog: str = ""  # udp://host:514 or unix:///dev/log; off when empty
    audit_checkpoint_events: int = 1000
    audit_checkpoint_seconds: float = 300.0
    # ingest: an instance naming another patient than its study's is refused unless allowed
    allow_patient_mismatch: bool = False
    # dimse: known peers (C-MOVE destinations too); strict = only they may associate
    modalities: tuple[RemoteAE, ...] = ()
    dimse_strict: bool = False
    # DIMSE processes sharing the listening port (1: the listener runs inside `klinika serve`)
    dimse_workers: int = 2
    # accept C-STORE of private or unknown storage SOP classes (Orthanc's UnknownSopClassAccepted)
    dimse_accept_unknown_sop_classes: bool = False
    # DICOM TLS (PS3.15 B.1): a second listener when a certificate and key are given;
    # dimse_tls_ca verifies client certificates (required from modalities marked +cert)
    dimse_tls_port: int = 2762
    dimse_tls_cert: Path | None = None
    dimse_tls_key: Path | None = None
    dimse_tls_ca: Path | None = None
    # a deflated data set may inflate to at most this many bytes, and (past 16 MiB) to at most
    # max_inflate_ratio times its deflated size (0: no ratio cap)
    max_inflated_bytes: int = 1 << 30
    max_inflate_ratio: int = 100
    # backups: scheduled in `klinika serve` when backup_dir is set; retention for pruning
    backup_dir: Path | None = None
    backup_interval_minutes: float = 60.0
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
    backup_keep_monthly: int = 12
    # the promise: readiness is degraded and the alert fires when the newest backup in
    # backup_dir is older than the RPO; the scheduler verifies the newest backup every
    # backup_verify_days and the audit chain daily (backup_interval_minutes 0: monitor only,
    # an outside timer makes the backups)
    backup_rpo_minutes: float = 60.0
    backup_verify_days: float = 30.0
    # operations: logs (docs/operations.md) and Prometheus metrics (off unless a port or a
    # token is set; never open on the main port without the token)
    log_format: LogFormat = "text"
    log_level: str = "info"
    log_stream: str = "stderr"
    log_file: Path | None = None
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    metrics_token: str = dataclasses.field(default="", repr=False)
    # HL7 v2 over MLLP (off unless a port is set; the host as the other listeners): the
    # senders whose messages are applied, written APP@FACILITY (FACILITY * or left out: any
    # facility), separated by commas or spaces; required when the port is set
    hl7_host: str = "127.0.0.1"
    hl7_port: int = 0
    hl7_senders: str = ""
    # clinic branding (pages, report PDF header)
    clinic_name: str = "Klinika"
    clinic_address: str = ""
    clinic_logo: Path | None = None
    # downloaded third-party assets (the OHIF viewer); default <data_dir>/cache
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.duplicate_policy not in set(DuplicatePolicy):
            raise ConfigError(
                f"duplicate_policy must be one of {', '.join(DuplicatePolicy)}, "
                f"not {self.duplicate_policy!r}"
            )
        object.__setattr__(self, "duplicate_policy", DuplicatePolicy(self.duplicate_policy))
        if self.password_hash_profile not in get_args(PasswordHashProfile):
            raise ConfigError(
                f"password_hash_profile must be one of {get_args(PasswordHashProfile)}, "
                f"not {self.password_hash_profile!r}"
            )
        if not 1 <= len(self.ae_title) <= 16:
            raise ConfigError("ae_title must be 1 to 16 characters")
        for name in ("http_port", "dimse_port", "dimse_tls_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a TCP port, not {port}")
        if self.jwt_secret and len(self.jwt_secret.encode("utf-8")) < 32:
            raise ConfigError("jwt_secret must be at least 32 bytes long")
        for name in (
            "token_hours_admin",
            "token_hours_user",
            "login_max_failures",
            "dimse_workers",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if (self.dimse_tls_cert is None) != (self.dimse_tls_key is None):
            raise ConfigError("dimse_tls_cert and dimse_tls_key go together: give both or neither")
        if self.dimse_tls_ca is not None and self.dimse_tls_cert is None:
            raise ConfigError("dimse_tls_ca needs the TLS listener: set dimse_tls_cert and _key")
        if self.max_inflated_bytes < 1 or self.max_inflate_ratio < 0:
            raise ConfigError("max_inflated_bytes must be positive and max_inflate_ratio ≥ 0")
        if self.audit_checkpoint_events < 1:
            raise ConfigError("audit_checkpoint_events must be at least 1")
        if self.audit_syslog and not self.audit_syslog.startswith(("udp://", "unix://")):
            raise ConfigError("audit_syslog must be udp://HOST:PORT or unix:///PATH")
        self._check_storage()
        if not 1 <= self.login_lockout_seconds <= 86400:
            raise ConfigError("login_lockout_seconds must be between 1 and 86400")
        if not self.login_lockout_seconds <= self.login_lockout_max_seconds <= 7 * 86400:
            raise ConfigError(
                "login_lockout_max_seconds must be between login_lockout_seconds and 7 days"
            )
        for name in (
            "login_account_max_failures",
            "login_max_concurrent_hashes",
            "max_request_bytes",
            "max_instance_bytes",
            "max_frames_per_request",
            "max_multipart_boundary",
            "qido_max_fuzzy_words",
            "zip_max_members",
            "zip_max_total_bytes",
            "zip_max_ratio",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.transcode_cache_bytes < 0:
            raise ConfigError("transcode_cache_bytes must not be negative")
        if self.max_instance_bytes > self.max_request_bytes:
            raise ConfigError("max_instance_bytes must not exceed max_request_bytes")
        if self.password_min_length < 8:
            raise ConfigError("password_min_length must be at least 8 (ASVS 2.1.1 asks 12)")
        self.proxy_networks  # noqa: B018 (parsing them is the check: ConfigError if not)
        if self.log_format not in get_args(LogFormat):
            raise ConfigError(f"log_format must be text or json, not {self.log_format!r}")
        if self.log_stream not in LOG_STREAMS:
            raise ConfigError(f"log_stream must be one of {LOG_STREAMS}, not {self.log_stream!r}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {LOG_LEVELS}, not {self.log_level!r}")
        if self.log_max_bytes < 1024 or self.log_backups < 1:
            raise ConfigError("log_max_bytes must be at least 1024 and log_backups at least 1")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be a TCP port, not {self.metrics_port}")
        if not 0 <= self.hl7_port <= 65535:
            raise ConfigError(f"hl7_port must be a TCP port, not {self.hl7_port}")
        if self.hl7_port and not self.hl7_allowed_senders:
            raise ConfigError(
                "hl7_senders must name the sending applications (APP@FACILITY) whose messages "
                "are applied when hl7_port is set"
            )
        if self.metrics_token and len(self.metrics_token) < 16:
            raise ConfigError("metrics_token must be at least 16 characters long")
        if self.backup_rpo_minutes <= 0 or self.backup_verify_days <= 0:
            raise ConfigError("backup_rpo_minutes and backup_verify_days must be positive")
        if not self.database_url:
            db_path = (self.data_dir / "index.sqlite").resolve()
            object.__setattr__(self, "database_url", f"sqlite:///{db_path}")

    def _check_storage(self) -> None:
        if self.storage not in get_args(StorageKind):
            raise ConfigError(
                f"storage must be one of {get_args(StorageKind)}, not {self.storage!r}"
            )
        if self.storage == "s3" and not self.s3_bucket:
            raise ConfigError("storage = s3 needs s3_bucket (KLINIKA_S3_BUCKET)")
        if self.s3_retry_seconds < 0:
            raise ConfigError("s3_retry_seconds must not be negative")
        if self.s3_multipart_mb < 5:
            raise ConfigError("s3_multipart_mb must be at least 5 (S3's smallest part)")

    @property
    def hl7_allowed_senders(self) -> tuple[tuple[str, str], ...]:
        """``hl7_senders`` as (application, facility) pairs; facility ``*`` means any."""
        pairs = []
        for entry in re.split(r"[\s,;]+", self.hl7_senders.strip()):
            if not entry:
                continue
            application, _, facility = entry.partition("@")
            if not application.strip():
                raise ConfigError(f"hl7_senders: {entry!r} names no application (APP@FACILITY)")
            pairs.append((application.strip(), facility.strip() or "*"))
        return tuple(pairs)

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted_proxies` as networks (an address is a /32 or /128).

        Raises
        ------
        ConfigError
            An entry is neither an address nor a network (uvicorn would silently ignore it).
        """
        networks = []
        for entry in re.split(r"[\s,]+", self.trusted_proxies.strip()):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ConfigError(
                    f"trusted_proxies: {entry!r} is not an IP address or network"
                ) from exc
        return tuple(networks)

    @property
    def cache_path(self) -> Path:
        """Where downloaded assets (the OHIF viewer) are kept."""
        return self.cache_dir or self.data_dir / "cache"

    @property
    def audit_key_path(self) -> Path:
        """The audit key's file (mode 0600, never in the database)."""
        return (
            Path(self.audit_key_file)
            if self.audit_key_file
            else self.data_dir / "secrets" / "audit.key"
        )

    @property
    def audit_checkpoint_path(self) -> Path:
        """The signed checkpoints of the audit chain, beside the key."""
        return self.audit_key_path.parent / "audit-checkpoints.log"

    @property
    def blob_dir(self) -> Path:
        """Where instance files live."""
        return self.data_dir / "blobs"


_OPTIONAL_PATHS = (
    "backup_dir",
    "clinic_logo",
    "cache_dir",
    "dimse_tls_cert",
    "dimse_tls_key",
    "dimse_tls_ca",
    "log_file",
)


def _convert(name: str, raw: Any, type_hint: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or say which setting is wrong."""
    try:
        if type_hint is Path or type_hint == "Path":
            return Path(raw)
        if type_hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if type_hint is int:
            return int(raw)
        if type_hint is float:
            return float(raw)
        if name in _OPTIONAL_PATHS:
            return Path(raw) if str(raw) else None
        if name == "modalities":
            items = re.split(r"[\s;]+", raw) if isinstance(raw, str) else list(raw)
            return tuple(
                item
                if isinstance(item, RemoteAE)
                else RemoteAE.from_table(item)
                if isinstance(item, Mapping)
                else RemoteAE.parse(str(item))
                for item in items
                if str(item).strip()
            )
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name} has an invalid value {raw!r}") from exc


def load_settings(
    env: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and explicit overrides.

    Raises
    ------
    ConfigError
        When a value cannot be converted, a key is unknown, or a rule is broken.
    """
    env = os.environ if env is None else env
    hints = get_type_hints(Settings)
    fields = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    toml_path = toml_path or (Path(env["KLINIKA_CONFIG"]) if env.get("KLINIKA_CONFIG") else None)
    if toml_path is not None:
        try:
            data = tomllib.loads(Path(toml_path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {toml_path}: {exc}") from exc
        unknown = set(data) - fields
        if unknown:
            raise ConfigError(f"unknown settings in {toml_path}: {', '.join(sorted(unknown))}")
        values.update(data)

    for name in fields:
        key = f"KLINIKA_{name.upper()}"
        if key in env:
            values[name] = env[key]
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - fields
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    converted = {name: _convert(name, raw, hints[name]) for name, raw in values.items()}
    return Settings(**converted)
