"""Where the workspace host, credentials, profile and store path come from, and CLI time parsing.

Credentials are resolved by databricks-sdk's unified auth (`databricks.sdk.core.Config`), fed from
flags, DATABRICKS_* variables and ~/.databrickscfg; resolving may contact the workspace (host
metadata, OAuth token endpoints). No token or secret ever reaches a repr, a log line or an error.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.machinery
import importlib.util
import ipaddress
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from extractor.errors import AuthError, ConfigError, UsageError

DEFAULT_CONFIG_FILE = "~/.databrickscfg"
DEFAULT_DB_PATH = "jobruns.duckdb"
_SETTINGS_SECTION = "__settings__"
# The SDK's own lookups (host metadata, OIDC discovery) retry this long on an unreachable host,
# instead of its default of 300 s, before our client reports the host as unreachable.
_SDK_RETRY_TIMEOUT_S = 5
_SDK_HTTP_TIMEOUT_S = 10.0
# Credentials whose header never changes: refreshing them after a refusal cannot help.
_STATIC_AUTH_TYPES = frozenset({"pat", "basic"})

# The sign-in methods of databricks-sdk's default chain that make sense for jobruns, in the SDK's
# names (databricks/sdk/credentials_provider.py, DefaultCredentials). Azure managed identity goes
# through `az login --identity` and azure-cli: this SDK has no separate provider for it.
AUTH_TYPES = (
    "pat",
    "oauth-m2m",
    "databricks-cli",
    "external-browser",
    "azure-cli",
    "azure-client-secret",
    "github-oidc",
    "github-oidc-azure",
    "azure-devops-oidc",
    "env-oidc",
    "file-oidc",
    "google-credentials",
    "google-id",
    "metadata-service",
    "runtime",
    "basic",
)

_HOW_TO_CONFIGURE = (
    "Pass --host and --token, or set DATABRICKS_HOST together with DATABRICKS_TOKEN (a personal "
    "access token) or with DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (an OAuth service "
    "principal), or name a profile of ~/.databrickscfg with --profile or DATABRICKS_CONFIG_PROFILE "
    "(another file via DATABRICKS_CONFIG_FILE); `databricks auth login`, `az login` and the other "
    "sign-in methods of the Databricks CLI work too (see `jobruns auth describe`)."
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


class Credentials(Protocol):
    """Where the Authorization header of each request comes from."""

    def headers(self) -> dict[str, str]:
        """Headers for the next request; an OAuth token is refreshed before it expires."""
        ...

    def refresh(self) -> bool:
        """Drop cached tokens after the workspace refused one; False if that cannot help."""
        ...

    def secrets(self) -> list[str]:
        """Every secret value known, so that error texts can be scrubbed of them."""
        ...


@dataclass
class StaticToken:
    """A personal access token already in hand (tests, scripts): no SDK, no network."""

    token: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh(self) -> bool:
        return False

    def secrets(self) -> list[str]:
        return [self.token]


@dataclass(frozen=True)
class Source:
    """One setting of a resolved configuration and where it came from (for `auth describe`)."""

    name: str
    value: str
    source: str


@dataclass(frozen=True, repr=False)
class WorkspaceConfig:
    """One workspace and the credentials to read it; secrets stay inside `credentials`."""

    host: str
    auth_type: str
    credentials: Credentials = field(compare=False)
    profile: str | None = None
    workspace_id: str | None = None
    config_file: str | None = None
    sources: tuple[Source, ...] = field(default=(), compare=False)

    @classmethod
    def with_token(
        cls, host: str, token: str, *, workspace_id: str | None = None
    ) -> WorkspaceConfig:
        """A workspace read with a personal access token already in hand."""
        return cls(
            host=normalize_host(host),
            auth_type="pat",
            credentials=StaticToken(token),
            workspace_id=workspace_id or _workspace_id_from_url(host),
        )

    @property
    def auth_kind(self) -> str:
        """The sign-in method (the SDK's auth type: pat, oauth-m2m, databricks-cli, ...)."""
        return self.auth_type

    def __repr__(self) -> str:
        fields = [f"host={self.host!r}", f"auth={self.auth_type!r}"]
        if self.profile:
            fields.append(f"profile={self.profile!r}")
        if self.workspace_id:
            fields.append(f"workspace_id={self.workspace_id!r}")
        return f"WorkspaceConfig({', '.join(fields)})"

    def __str__(self) -> str:
        where = f" (profile {self.profile})" if self.profile else ""
        return f"{self.host} via {self.auth_type}{where}"


def _sdk_config_class() -> type[Any]:
    """databricks-sdk's Config, reading settings from an injected mapping instead of os.environ.

    The injected mapping lets a fleet extract resolve each profile without the DATABRICKS_*
    variables meant for one workspace, and lets tests resolve without touching os.environ. Built
    lazily: importing the SDK costs a fraction of a second that only commands that sign in pay.
    """
    global _SDK_CONFIG
    if _SDK_CONFIG is not None:
        return _SDK_CONFIG
    from extractor.extras import needs

    with needs("databricks.sdk", "jobruns", "signing in to a workspace"):
        _defer_sdk_package_init()
        from databricks.sdk.core import Config

    # The SDK collects its attributes from the class's own __dict__ on first use and caches them
    # on the class asked; collected on Config first, the subclass inherits the full list.
    Config.attributes()

    class _Config(Config):
        def __init__(self, *, env: Mapping[str, str], **kwargs: Any) -> None:
            self._jobruns_env = env
            self._jobruns_from_file: set[str] = set()
            self._jobruns_pasted_id = False
            super().__init__(**kwargs)

        def _load_from_env(self) -> None:
            # Same rules as the SDK's own loader (first non-empty of the variable and its
            # aliases, never over a value given as an argument), reading the injected mapping.
            for attr in self.attributes():
                if not attr.env or attr.name in self._inner:
                    continue
                value = _env_value(self._jobruns_env, attr.env, attr.env_aliases)
                if value:
                    setattr(self, attr.name, value)

        def _known_file_config_loader(self) -> None:
            before = set(self._inner)
            super()._known_file_config_loader()  # type: ignore[no-untyped-call]
            self._jobruns_from_file = set(self._inner) - before

        def _fix_host_if_needed(self) -> None:
            # Before the SDK's first request to the host: our rules (http:// only for loopback,
            # no user:password in the URL), and a pasted browser URL's ?o= workspace id.
            if not self.host:
                return
            if not self.workspace_id:
                pasted = _workspace_id_from_url(self.host)
                if pasted:
                    self.workspace_id = pasted
                    self._jobruns_pasted_id = True
            self.host = normalize_host(self.host)

    _SDK_CONFIG = _Config
    return _Config


_SDK_CONFIG: type[Any] | None = None


def _defer_sdk_package_init() -> None:
    """Let databricks.sdk.core load without running the package's own __init__ first.

    databricks/sdk/__init__.py imports every service module of the SDK (about a second of
    dataclass building) before any of its submodules can load; signing in needs only the core,
    about a third of that. The package is entered as a module whose __init__ runs on the first
    attribute the core did not set (WorkspaceClient, say), so `import databricks.sdk` later in
    the same process gives the whole package, with these same submodules and classes.
    """
    if "databricks.sdk" not in sys.modules:
        spec = importlib.util.find_spec("databricks.sdk")
        if spec is not None and spec.loader is not None and spec.submodule_search_locations:
            package = importlib.util.module_from_spec(spec)
            loader = spec.loader
            # Another thread asking meanwhile waits for __init__ to finish; __init__'s own
            # questions about names it has not defined yet get AttributeError, as usual.
            completing = threading.RLock()
            running = False

            def complete(name: str) -> Any:
                nonlocal running
                if importlib.machinery.PathFinder.find_spec(name, package.__path__):
                    # A submodule (`from . import useragent` asks for it with hasattr first).
                    return importlib.import_module(f"databricks.sdk.{name}")
                with completing:
                    if not running and "__getattr__" in package.__dict__:
                        running = True
                        try:
                            loader.exec_module(package)
                            if package.__dict__.get("__getattr__") is complete:
                                del package.__dict__["__getattr__"]
                        finally:
                            running = False
                try:
                    return package.__dict__[name]
                except KeyError:
                    message = f"module 'databricks.sdk' has no attribute {name!r}"
                    raise AttributeError(message) from None

            package.__dict__["__getattr__"] = complete
            sys.modules["databricks.sdk"] = package
            sys.modules["databricks"].__dict__["sdk"] = package  # as the import system does


def _env_value(env: Mapping[str, str], name: str, aliases: list[str]) -> str | None:
    for key in (name, *aliases):
        value = (env.get(key) or "").strip()
        if value:
            return value
    return None


class _SdkCredentials:
    """Headers from the SDK's credentials provider; it refreshes expiring OAuth tokens itself."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        try:
            return dict(self._config.authenticate())
        except Exception as exc:  # the providers raise ValueError, OSError, requests errors
            raise AuthError(
                f"cannot get a {self._config.auth_type} access token for {self._config.host}: "
                f"{_scrub(str(exc), self.secrets())}"
            ) from None

    def refresh(self) -> bool:
        if self._config.auth_type in _STATIC_AUTH_TYPES:
            return False
        with self._lock:
            try:
                # A new header factory: its token source starts empty and fetches a new token.
                self._config.init_auth()
            except Exception as exc:
                raise AuthError(
                    f"cannot refresh the {self._config.auth_type} token for "
                    f"{self._config.host}: {_scrub(str(exc), self.secrets())}"
                ) from None
        return True

    def secrets(self) -> list[str]:
        values = []
        for attr in self._config.attributes():
            value = getattr(self._config, attr.name)
            if attr.sensitive and isinstance(value, str) and value:
                values.append(value)
        return values


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _config_path(env: Mapping[str, str]) -> Path:
    return Path(_clean(env.get("DATABRICKS_CONFIG_FILE")) or DEFAULT_CONFIG_FILE).expanduser()


def _read_config_file(path: Path) -> configparser.ConfigParser | None:
    if not path.is_file():
        return None
    # Profiles are never merged with [DEFAULT] (as in the SDK): no configparser default section.
    parser = configparser.ConfigParser(default_section="\x00none\x00", interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the Databricks config file {path}: {exc}") from None
    return parser


def _profile_names(parser: configparser.ConfigParser) -> list[str]:
    return [name for name in parser.sections() if name != _SETTINGS_SECTION]


def _check_profile(requested: str | None, path: Path) -> configparser.ConfigParser | None:
    """The config file, after checking that a requested profile exists (a clearer message than
    the SDK's, naming the profiles there are)."""
    parser = _read_config_file(path)
    if requested is None:
        return parser
    if parser is None:
        raise ConfigError(
            f"profile {requested!r} was requested but the config file {path} does not exist"
        )
    if requested == _SETTINGS_SECTION:
        raise ConfigError(f"{_SETTINGS_SECTION} is a reserved section of {path}, not a profile")
    available = _profile_names(parser)
    if requested not in available:
        listing = ", ".join(available) if available else "none"
        raise ConfigError(
            f"profile {requested!r} not found in {path} (available profiles: {listing})"
        )
    return parser


def resolve_workspace(
    host: str | None = None,
    token: str | None = None,
    profile: str | None = None,
    *,
    auth_type: str | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkspaceConfig:
    """Resolve host and credentials with databricks-sdk's unified auth, as the Databricks CLI does.

    Each setting comes from the first source that has it: the arguments (--host, --token,
    --auth-type), then the environment (DATABRICKS_HOST, DATABRICKS_TOKEN, ARM_CLIENT_ID, ...),
    then one profile of the config file, which is read only when a profile is named or nothing
    else configured a host or a credential. The profile is `profile`, else
    DATABRICKS_CONFIG_PROFILE, else [__settings__] default_profile, else DEFAULT, never merged with
    DEFAULT. Then the first sign-in method of the SDK's order whose settings are present is used,
    or `auth_type` alone when given. Settings for two methods at once (a token and a client
    secret) need `auth_type` to choose.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if auth_type is not None and auth_type not in AUTH_TYPES:
        raise ConfigError(f"unknown auth type {auth_type!r}; use one of: {', '.join(AUTH_TYPES)}")
    arguments = {
        "host": _clean(host),
        "token": _clean(token),
        "profile": _clean(profile),
        "auth_type": _clean(auth_type),
    }
    requested = arguments["profile"] or _clean(environ.get("DATABRICKS_CONFIG_PROFILE"))
    path = _config_path(environ)
    parser = _check_profile(requested, path)
    if requested is not None and parser is not None:
        _refuse_foreign_host(
            arguments["host"] or _clean(environ.get("DATABRICKS_HOST")), parser, requested
        )
    kwargs = {k: v for k, v in arguments.items() if v is not None}
    config_class = _sdk_config_class()
    secrets = [v for v in (arguments["token"], *_secret_env_values(environ)) if v]
    try:
        sdk = config_class(
            env=environ,
            retry_timeout_seconds=_SDK_RETRY_TIMEOUT_S,
            http_timeout_seconds=_SDK_HTTP_TIMEOUT_S,
            **kwargs,
        )
    except ValueError as exc:
        message = _scrub(str(exc), secrets)
        raise ConfigError(_explain(message, requested, path, auth_type)) from None
    sources = _sources(sdk, set(kwargs), environ, path)
    loaded_profile = sdk.profile or ("DEFAULT" if sdk._jobruns_from_file else None)
    return WorkspaceConfig(
        host=sdk.host,
        auth_type=sdk.auth_type,
        credentials=_SdkCredentials(sdk),
        profile=loaded_profile if sdk._jobruns_from_file or requested else None,
        workspace_id=_clean(sdk.workspace_id),
        config_file=str(path) if sdk._jobruns_from_file else None,
        sources=sources,
    )


def _secret_env_values(env: Mapping[str, str]) -> list[str]:
    names = (
        "DATABRICKS_TOKEN",
        "DATABRICKS_CLIENT_SECRET",
        "DATABRICKS_PASSWORD",
        "ARM_CLIENT_SECRET",
        "GOOGLE_CREDENTIALS",
        "DATABRICKS_METADATA_SERVICE_URL",
    )
    return [env[name] for name in names if env.get(name)]


def _refuse_foreign_host(host: str | None, parser: configparser.ConfigParser, profile: str) -> None:
    # The SDK takes DATABRICKS_HOST over a named profile's host while still reading the
    # profile's secrets: sending those to a host the profile does not name would leak them.
    file_host = _clean(parser[profile].get("host"))
    if host is None or file_host is None:
        return
    section = parser[profile]
    if not any(_clean(section.get(key)) for key in _SECRET_KEYS):
        return
    if normalize_host(host) != normalize_host(file_host):
        raise ConfigError(
            f"the host {normalize_host(host)} (from --host or DATABRICKS_HOST) differs from the "
            f"host of profile {profile!r} ({normalize_host(file_host)}); refusing to send that "
            "profile's credentials elsewhere. Unset DATABRICKS_HOST or drop --host."
        )


_SECRET_KEYS = ("token", "client_secret", "password", "azure_client_secret", "google_credentials")


def _explain(message: str, profile: str | None, path: Path, auth_type: str | None) -> str:
    """The SDK's error, led by what a jobruns user should do about it."""
    where = f" (profile {profile!r} of {path})" if profile else ""
    if "cannot configure default credentials" in message:
        # The SDK appends the settings it saw (secrets masked): no host= means no host at all.
        if "host=" not in message:
            return f"no Databricks host configured{where}. " + _HOW_TO_CONFIGURE
        if auth_type is not None:
            return (
                f"auth type {auth_type!r} cannot sign in here{where}: its settings are missing "
                "or it does not apply to this host (see the table of methods in the README). "
                + _HOW_TO_CONFIGURE
            )
        half = ""
        if ("client_id=" in message) != ("client_secret=" in message):
            half = " OAuth M2M needs both a client id and a client secret; only one is set."
        return f"no Databricks credentials configured{where}.{half} " + _HOW_TO_CONFIGURE
    if "Invalid URL 'None'" in message:
        # OAuth needs the OIDC endpoints, which the SDK reads from the host's metadata.
        return (
            f"cannot find the OAuth endpoints of the workspace{where}: its "
            "/.well-known/databricks-config did not answer (check the host and the network)"
        )
    if "more than one authorization method" in message:
        return (
            f"{message}. Choose one with --auth-type (or auth_type in the profile, "
            f"DATABRICKS_AUTH_TYPE){where}."
        )
    return f"cannot sign in{where}: {message}"


def _sources(
    sdk: Any, from_args: set[str], env: Mapping[str, str], path: Path
) -> tuple[Source, ...]:
    flags = {
        "host": "--host",
        "token": "--token",
        "profile": "--profile",
        "auth_type": "--auth-type",
    }
    where_file = f"profile {sdk.profile or 'DEFAULT'} of {path}"
    rows = []
    for attr in sdk.attributes():
        value = getattr(sdk, attr.name)
        if (
            value is None
            or value == ""
            or attr.name in ("retry_timeout_seconds", "http_timeout_seconds")
        ):
            continue
        if attr.name in from_args:
            source = flags.get(attr.name, "argument")
        elif attr.name in sdk._jobruns_from_file:
            source = where_file
        elif attr.env and _env_value(env, attr.env, attr.env_aliases):
            name = next(n for n in (attr.env, *attr.env_aliases) if _clean(env.get(n)))
            source = f"environment {name}"
        elif attr.name == "workspace_id" and sdk._jobruns_pasted_id:
            source = "?o= of the host URL"
        elif attr.name == "auth_type":
            source = "the first method whose settings are present"
        else:
            source = "the host metadata, /.well-known/databricks-config"
        shown = _mask(str(value)) if attr.sensitive else _plain(value)
        rows.append(Source(attr.name, shown, source))
    return tuple(rows)


def _plain(value: object) -> str:
    return str(getattr(value, "value", value))


def _mask(value: str) -> str:
    """Like the Databricks CLI: a secret shows as ******** whatever its length."""
    return "********" if value else ""


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
