"""Settings: one typed object, read once at start from ``KLINIKA_*`` variables and a TOML file.

Owns: :class:`Settings` and :func:`load_settings`. May import: nothing from klinika but errors.
Precedence: explicit overrides > environment > TOML file (``KLINIKA_CONFIG`` or ``--config``) >
defaults. Unknown keys in the TOML file are refused so that typos do not pass silently.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from klinika.errors import ConfigError

DuplicatePolicy = Literal["keep", "overwrite", "reject"]
LogFormat = Literal["text", "json"]
LOG_STREAMS = ("stderr", "stdout", "none")
LOG_LEVELS = ("debug", "info", "warning", "error")
DIMSE_SERVICES = frozenset({"echo", "store", "find", "move", "get"})


@dataclasses.dataclass(frozen=True)
class RemoteAE:
    """A known DICOM application entity: a modality, workstation or other PACS.

    Written ``TITLE@HOST:PORT`` or ``TITLE@HOST:PORT/store,find`` (the services it may use on
    us; all by default); several are separated by spaces or semicolons in ``KLINIKA_MODALITIES``.
    In a TOML file, either such strings or ``[[modalities]]`` tables (see :meth:`from_table`).
    The address is also where C-MOVE sends instances for that title.
    """

    title: str
    host: str
    port: int
    services: frozenset[str] = DIMSE_SERVICES

    @classmethod
    def parse(cls, text: str) -> RemoteAE:
        spec, _, services = text.strip().partition("/")
        title, at, address = spec.partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and title and host):
            raise ConfigError(f"a modality is written TITLE@HOST:PORT[/services], not {text!r}")
        chosen = [s.strip() for s in services.split(",") if s.strip()] or sorted(DIMSE_SERVICES)
        return cls.checked(title, host, port, chosen, what=repr(text))

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> RemoteAE:
        """A ``[[modalities]]`` TOML table: ``title``, ``host`` (an address or a network such
        as ``10.0.0.0/24``), ``port``, optional ``services`` (a list of echo/store/find/move/get;
        all when omitted)."""
        what = repr(dict(table))
        unknown = set(table) - {"title", "host", "port", "services"}
        if unknown:
            raise ConfigError(f"modality {what}: unknown keys {sorted(unknown)}")
        if not {"title", "host", "port"} <= set(table):
            raise ConfigError(f"modality {what}: title, host and port are required")
        services = table.get("services", sorted(DIMSE_SERVICES))
        if isinstance(services, str) or not isinstance(services, list | tuple) or not services:
            raise ConfigError(
                f"modality {what}: services must be a non-empty list (omit it for all)"
            )
        return cls.checked(table["title"], table["host"], table["port"], services, what=what)

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
    duplicate_policy: DuplicatePolicy = "keep"
    fsync: bool = True
    compress_storage: bool = False
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
    # dimse: known peers (C-MOVE destinations too); strict = only they may associate
    modalities: tuple[RemoteAE, ...] = ()
    dimse_strict: bool = False
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
    # clinic branding (pages, report PDF header)
    clinic_name: str = "Klinika"
    clinic_address: str = ""
    clinic_logo: Path | None = None
    # downloaded third-party assets (the OHIF viewer); default <data_dir>/cache
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.duplicate_policy not in get_args(DuplicatePolicy):
            raise ConfigError(
                f"duplicate_policy must be one of {get_args(DuplicatePolicy)}, "
                f"not {self.duplicate_policy!r}"
            )
        if not 1 <= len(self.ae_title) <= 16:
            raise ConfigError("ae_title must be 1 to 16 characters")
        for name in ("http_port", "dimse_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a TCP port, not {port}")
        if self.jwt_secret and len(self.jwt_secret.encode("utf-8")) < 32:
            raise ConfigError("jwt_secret must be at least 32 bytes long")
        for name in ("token_hours_admin", "token_hours_user", "login_max_failures"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 1 <= self.login_lockout_seconds <= 86400:
            raise ConfigError("login_lockout_seconds must be between 1 and 86400")
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
        if self.metrics_token and len(self.metrics_token) < 16:
            raise ConfigError("metrics_token must be at least 16 characters long")
        if self.backup_rpo_minutes <= 0 or self.backup_verify_days <= 0:
            raise ConfigError("backup_rpo_minutes and backup_verify_days must be positive")
        if not self.database_url:
            db_path = (self.data_dir / "index.sqlite").resolve()
            object.__setattr__(self, "database_url", f"sqlite:///{db_path}")

    @property
    def cache_path(self) -> Path:
        """Where downloaded assets (the OHIF viewer) are kept."""
        return self.cache_dir or self.data_dir / "cache"

    @property
    def blob_dir(self) -> Path:
        """Where instance files live."""
        return self.data_dir / "blobs"


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
        if name in ("backup_dir", "clinic_logo", "cache_dir", "log_file"):
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
