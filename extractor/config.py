"""Where the workspace host, credentials, profile and store path come from, and CLI time parsing.

This is the only module that reads environment variables or ~/.databrickscfg. It never performs
network I/O and never lets a token or client secret into a repr, a log line or an error message.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from extractor.errors import ConfigError, UsageError

AuthKind = Literal["pat", "oauth-m2m"]

DEFAULT_CONFIG_FILE = "~/.databrickscfg"
DEFAULT_DB_PATH = "jobruns.duckdb"
_SETTINGS_SECTION = "__settings__"
# configparser must not treat [DEFAULT] specially: a profile is never merged with DEFAULT.
_NO_DEFAULT_SECTION = "\x00jobruns-no-default\x00"
_AUTH_TYPE_ALIASES: dict[str, AuthKind] = {"pat": "pat", "oauth-m2m": "oauth-m2m"}

_HOW_TO_CONFIGURE = (
    "Pass --host and --token, or set DATABRICKS_HOST together with DATABRICKS_TOKEN (a personal "
    "access token) or with DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (an OAuth service "
    "principal), or name a profile of ~/.databrickscfg with --profile or DATABRICKS_CONFIG_PROFILE "
    "(another file via DATABRICKS_CONFIG_FILE)."
)


def normalize_host(host: str) -> str:
    """Return `host` as `https://name[:port]`: scheme added, trailing slash and :443 dropped.

    Plain http:// is accepted only for loopback hosts (a local simulator or proxy); anything else
    would send the token in clear text.
    """
    text = host.strip()
    if not text:
        raise ConfigError("the Databricks host is empty. " + _HOW_TO_CONFIGURE)
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ConfigError(f"host {host!r} must start with https:// (got scheme {scheme!r})")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("the host must not contain a user name or password; use --token instead")
    name = (parts.hostname or "").lower()
    if not name:
        raise ConfigError(
            f"host {host!r} has no host name; expected e.g. https://dbc-1234.cloud.databricks.com"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"host {host!r} has an invalid port: {exc}") from None
    if scheme == "http" and not _is_loopback(name):
        raise ConfigError(
            f"refusing plain http:// for {name}: the token would travel unencrypted. Use https:// "
            "(http:// is allowed only for localhost, 127.0.0.0/8 and ::1, e.g. a local simulator)."
        )
    netloc = f"[{name}]" if ":" in name else name
    if port is not None and not (scheme == "https" and port == 443):
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    return f"{scheme}://{netloc}{path}"


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _workspace_id_from_url(host: str) -> str | None:
    # People paste the browser URL, which carries the workspace id as `?o=<id>`.
    values = parse_qs(urlsplit(host.strip()).query).get("o", [])
    return values[0] if values and values[0].isdigit() else None


class WorkspaceConfig(BaseModel):
    """One workspace and the credentials to read it. Secrets stay inside `SecretStr`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    auth_type: str | None = None
    profile: str | None = None
    workspace_id: str | None = None

    @field_validator("host")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_host(value)

    @property
    def auth_kind(self) -> AuthKind:
        """'pat' or 'oauth-m2m': `auth_type` when set, else PAT whenever a token is present."""
        if self.auth_type in _AUTH_TYPE_ALIASES:
            return _AUTH_TYPE_ALIASES[self.auth_type]
        return "pat" if self.token is not None else "oauth-m2m"

    def __repr__(self) -> str:
        fields = [f"host={self.host!r}", f"auth={self.auth_kind!r}"]
        if self.client_id:
            fields.append(f"client_id={self.client_id!r}")
        if self.profile:
            fields.append(f"profile={self.profile!r}")
        if self.workspace_id:
            fields.append(f"workspace_id={self.workspace_id!r}")
        return f"WorkspaceConfig({', '.join(fields)})"

    def __str__(self) -> str:
        where = f" (profile {self.profile})" if self.profile else ""
        return f"{self.host} via {self.auth_kind}{where}"


@dataclass
class _Settings:
    """Raw values gathered from one source (arguments, environment or a profile)."""

    host: str | None = None
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    auth_type: str | None = None
    workspace_id: str | None = None

    def has_any(self) -> bool:
        return any((self.host, self.token, self.client_id, self.client_secret))


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _env_settings(env: Mapping[str, str]) -> _Settings:
    return _Settings(
        host=_clean(env.get("DATABRICKS_HOST")),
        token=_clean(env.get("DATABRICKS_TOKEN")),
        client_id=_clean(env.get("DATABRICKS_CLIENT_ID")),
        client_secret=_clean(env.get("DATABRICKS_CLIENT_SECRET")),
        auth_type=_clean(env.get("DATABRICKS_AUTH_TYPE")),
        workspace_id=_clean(env.get("DATABRICKS_WORKSPACE_ID")),
    )


def _config_path(env: Mapping[str, str]) -> Path:
    return Path(_clean(env.get("DATABRICKS_CONFIG_FILE")) or DEFAULT_CONFIG_FILE).expanduser()


def _read_config_file(path: Path) -> configparser.ConfigParser | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(default_section=_NO_DEFAULT_SECTION, interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the Databricks config file {path}: {exc}") from None
    return parser


def _profile_names(parser: configparser.ConfigParser) -> list[str]:
    return [name for name in parser.sections() if name != _SETTINGS_SECTION]


def _profile_settings(parser: configparser.ConfigParser, name: str) -> _Settings:
    section = parser[name]
    return _Settings(
        host=_clean(section.get("host")),
        token=_clean(section.get("token")),
        client_id=_clean(section.get("client_id")),
        client_secret=_clean(section.get("client_secret")),
        auth_type=_clean(section.get("auth_type")),
        workspace_id=_clean(section.get("workspace_id")),
    )


def _choose_profile(
    parser: configparser.ConfigParser, requested: str | None, path: Path
) -> str | None:
    """The profile to load: the requested one, else [__settings__] default_profile, else DEFAULT."""
    available = _profile_names(parser)
    named = requested
    if named is None and parser.has_section(_SETTINGS_SECTION):
        named = _clean(parser[_SETTINGS_SECTION].get("default_profile"))
    if named is None:
        return "DEFAULT" if "DEFAULT" in available else None
    if named == _SETTINGS_SECTION:
        raise ConfigError(f"{_SETTINGS_SECTION} is a reserved section of {path}, not a profile")
    if named not in available:
        listing = ", ".join(available) if available else "none"
        raise ConfigError(f"profile {named!r} not found in {path} (available profiles: {listing})")
    return named


def _pick(*values: str | None) -> str | None:
    return next((value for value in values if value is not None), None)


def resolve_workspace(
    host: str | None = None,
    token: str | None = None,
    profile: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> WorkspaceConfig:
    """Resolve host and credentials the way Databricks unified auth does.

    Each setting comes from the first source that has it: the arguments (--host/--token), then the
    environment (DATABRICKS_HOST, DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID/SECRET, ...), then one
    profile of the config file. The file is skipped entirely when a host or a credential is already
    set and no profile was named (as the SDK does). The profile is `profile`, else
    DATABRICKS_CONFIG_PROFILE, else [__settings__] default_profile, else DEFAULT; it is never merged
    with DEFAULT. When both a token and a client secret are present, `auth_type` decides; without
    it the token (PAT) wins, as it does in the SDK's default credential order.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    args = _Settings(host=_clean(host), token=_clean(token))
    from_env = _env_settings(environ)
    requested_profile = _clean(profile) or _clean(environ.get("DATABRICKS_CONFIG_PROFILE"))

    from_file = _Settings()
    profile_name: str | None = None
    config_path = _config_path(environ)
    if requested_profile is not None or not (args.has_any() or from_env.has_any()):
        parser = _read_config_file(config_path)
        if parser is None:
            if requested_profile is not None:
                raise ConfigError(
                    f"profile {requested_profile!r} was requested but the config file "
                    f"{config_path} does not exist"
                )
        else:
            profile_name = _choose_profile(parser, requested_profile, config_path)
            if profile_name is not None:
                from_file = _profile_settings(parser, profile_name)

    sources = (args, from_env, from_file)
    merged = _Settings(
        host=_pick(*(s.host for s in sources)),
        token=_pick(*(s.token for s in sources)),
        client_id=_pick(*(s.client_id for s in sources)),
        client_secret=_pick(*(s.client_secret for s in sources)),
        auth_type=_pick(*(s.auth_type for s in sources)),
        workspace_id=_pick(*(s.workspace_id for s in sources)),
    )
    where = f" (profile {profile_name!r} of {config_path})" if profile_name else ""
    if merged.host is None:
        raise ConfigError(f"no Databricks host configured{where}. " + _HOW_TO_CONFIGURE)
    _refuse_foreign_credentials(merged, from_file, profile_name)
    kind = _auth_kind(merged, where)
    return WorkspaceConfig(
        host=merged.host,
        token=SecretStr(merged.token) if kind == "pat" and merged.token else None,
        client_id=merged.client_id if kind == "oauth-m2m" else None,
        client_secret=(
            SecretStr(merged.client_secret)
            if kind == "oauth-m2m" and merged.client_secret
            else None
        ),
        auth_type=kind,
        profile=profile_name,
        workspace_id=merged.workspace_id or _workspace_id_from_url(merged.host),
    )


def _refuse_foreign_credentials(
    merged: _Settings, from_file: _Settings, profile_name: str | None
) -> None:
    # Attribute-wise precedence can pair DATABRICKS_HOST with a profile's secret; sending that
    # secret to a host the profile does not name would leak it.
    if from_file.host is None or merged.host is None:
        return
    secret_from_file = (merged.token is not None and merged.token == from_file.token) or (
        merged.client_secret is not None and merged.client_secret == from_file.client_secret
    )
    if secret_from_file and normalize_host(merged.host) != normalize_host(from_file.host):
        raise ConfigError(
            f"the host {normalize_host(merged.host)} (from --host or DATABRICKS_HOST) differs from "
            f"the host of profile {profile_name!r} ({normalize_host(from_file.host)}); refusing to "
            "send that profile's credentials elsewhere. Unset DATABRICKS_HOST or drop --host."
        )


def _auth_kind(merged: _Settings, where: str) -> AuthKind:
    has_oauth = merged.client_id is not None and merged.client_secret is not None
    if merged.auth_type is not None:
        kind = _AUTH_TYPE_ALIASES.get(merged.auth_type.lower())
        if kind is None:
            raise ConfigError(
                f"auth_type {merged.auth_type!r}{where} is not supported by jobruns; use 'pat' "
                "(personal access token) or 'oauth-m2m' (service principal client id and secret)."
            )
        if kind == "pat" and merged.token is None:
            raise ConfigError(
                f"auth_type is 'pat'{where} but no token is set. " + _HOW_TO_CONFIGURE
            )
        if kind == "oauth-m2m" and not has_oauth:
            raise ConfigError(
                f"auth_type is 'oauth-m2m'{where} but DATABRICKS_CLIENT_ID and "
                "DATABRICKS_CLIENT_SECRET (or client_id/client_secret in the profile) are not both set."
            )
        return kind
    if merged.token is not None:
        return "pat"
    if has_oauth:
        return "oauth-m2m"
    if merged.client_id is not None or merged.client_secret is not None:
        raise ConfigError(
            f"OAuth needs both a client id and a client secret{where}; only one is set. "
            + _HOW_TO_CONFIGURE
        )
    raise ConfigError(f"no Databricks credentials configured{where}. " + _HOW_TO_CONFIGURE)


def list_profiles(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the config file's profiles that have a host, in file order ([] without a file)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    parser = _read_config_file(_config_path(environ))
    if parser is None:
        return []
    return [name for name in _profile_names(parser) if _clean(parser[name].get("host"))]


def resolve_db_path(db: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The DuckDB file: `db` (--db), else JOBRUNS_DB, else ./jobruns.duckdb."""
    environ: Mapping[str, str] = os.environ if env is None else env
    chosen = _clean(db) or _clean(environ.get("JOBRUNS_DB")) or DEFAULT_DB_PATH
    return Path(chosen).expanduser()


_DURATION_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DURATION_PART = re.compile(r"(\d+)\s*([wdhms])")
_DURATION_RE = re.compile(r"^(?:\d+\s*[wdhms]\s*)+$")


def parse_duration(value: str, *, option: str = "duration") -> timedelta:
    """Parse `14d`, `6h`, `30m`, `90s`, `2w` or a combination such as `1h30m`."""
    text = value.strip().lower()
    if not _DURATION_RE.match(text):
        raise UsageError(
            f"invalid {option} {value!r}: expected a number with a unit, e.g. 14d, 6h, 30m, 90s "
            "(w = weeks, d = days, h = hours, m = minutes, s = seconds; combine as 1h30m)"
        )
    total = timedelta()
    for number, unit in _DURATION_PART.findall(text):
        total += timedelta(**{_DURATION_UNITS[unit]: int(number)})
    return total


def parse_since(value: str, now: datetime, *, option: str = "--since") -> datetime:
    """Parse an instant for --since-like options, as an aware UTC datetime.

    Accepts a date (2025-05-01, midnight UTC), a timestamp (2025-05-01T12:00Z,
    2025-05-01T12:00:00+02:00; UTC when no offset is given) or an age before `now` (14d, 6h).
    """
    text = value.strip()
    now_utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if _DURATION_RE.match(text.lower()):
        return now_utc - parse_duration(text, option=option)
    try:
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"invalid {option} value {value!r}: use a date (2025-05-01), a timestamp "
            "(2025-05-01T12:00Z or 2025-05-01T12:00:00+02:00; UTC when no offset is given) or an "
            "age such as 14d, 6h, 30m or 90s"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
