"""Where host, credentials and the store path come from; parsing of --since and durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from extractor.config import (
    WorkspaceConfig,
    list_profiles,
    normalize_host,
    parse_duration,
    parse_since,
    resolve_db_path,
    resolve_workspace,
)
from extractor.errors import ConfigError, UsageError

PAT = "dapi-secret-pat-0123456789"
FILE_PAT = "dapi-file-token-abcdef"
SP_SECRET = "dose-sp-secret-xyz"

CONFIG_FILE = f"""
[DEFAULT]
host  = https://dbc-default.cloud.databricks.com
token = {FILE_PAT}

[prod-sp]
host          = adb-1234567890123456.7.azuredatabricks.net/
client_id     = 9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03
client_secret = {SP_SECRET}
auth_type     = oauth-m2m

[no-token]
host = https://dbc-notoken.cloud.databricks.com

[hostless]
token = dapi-orphan
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "databrickscfg"
    path.write_text(CONFIG_FILE)
    return path


def env_with(cfg: Path | None = None, /, **values: str) -> dict[str, str]:
    env = {"HOME": "/nonexistent-home"}
    env["DATABRICKS_CONFIG_FILE"] = str(cfg) if cfg else "/nonexistent/databrickscfg"
    env.update(values)
    return env


def test_arguments_win_over_environment_and_file(cfg: Path) -> None:
    env = env_with(cfg, DATABRICKS_HOST="env.cloud.databricks.com", DATABRICKS_TOKEN="dapi-env")
    config = resolve_workspace("arg.cloud.databricks.com", PAT, env=env)
    assert config.host == "https://arg.cloud.databricks.com"
    assert config.token is not None and config.token.get_secret_value() == PAT
    assert config.auth_kind == "pat"
    assert config.profile is None


def test_environment_host_and_token_are_used_without_reading_the_file(cfg: Path) -> None:
    env = env_with(cfg, DATABRICKS_HOST="https://env.cloud.databricks.com/", DATABRICKS_TOKEN=PAT)
    config = resolve_workspace(env=env)
    assert config.host == "https://env.cloud.databricks.com"
    assert config.auth_kind == "pat"


def test_environment_host_hides_the_default_profile_like_the_sdk(cfg: Path) -> None:
    env = env_with(cfg, DATABRICKS_HOST="https://env.cloud.databricks.com")
    with pytest.raises(ConfigError, match="no Databricks credentials"):
        resolve_workspace(env=env)


def test_oauth_m2m_from_environment() -> None:
    env = env_with(
        DATABRICKS_HOST="https://sp.cloud.databricks.com",
        DATABRICKS_CLIENT_ID="client-1",
        DATABRICKS_CLIENT_SECRET=SP_SECRET,
    )
    config = resolve_workspace(env=env)
    assert config.auth_kind == "oauth-m2m"
    assert config.client_id == "client-1"
    assert config.client_secret is not None
    assert config.client_secret.get_secret_value() == SP_SECRET
    assert config.token is None


def test_token_and_client_secret_together_prefer_pat_unless_auth_type_says_otherwise() -> None:
    both = {
        "DATABRICKS_HOST": "https://x.cloud.databricks.com",
        "DATABRICKS_TOKEN": PAT,
        "DATABRICKS_CLIENT_ID": "client-1",
        "DATABRICKS_CLIENT_SECRET": SP_SECRET,
    }
    assert resolve_workspace(env=env_with(**both)).auth_kind == "pat"
    oauth = resolve_workspace(env=env_with(**both, DATABRICKS_AUTH_TYPE="oauth-m2m"))
    assert oauth.auth_kind == "oauth-m2m"
    assert oauth.token is None


def test_unsupported_auth_type_is_a_config_error() -> None:
    env = env_with(DATABRICKS_HOST="x.cloud.databricks.com", DATABRICKS_TOKEN=PAT)
    with pytest.raises(ConfigError, match=r"azure-cli.*not supported"):
        resolve_workspace(env={**env, "DATABRICKS_AUTH_TYPE": "azure-cli"})


def test_default_profile_is_read_when_nothing_else_is_set(cfg: Path) -> None:
    config = resolve_workspace(env=env_with(cfg))
    assert config.host == "https://dbc-default.cloud.databricks.com"
    assert config.token is not None and config.token.get_secret_value() == FILE_PAT
    assert config.profile == "DEFAULT"


def test_named_profile_from_argument_and_from_environment(cfg: Path) -> None:
    by_arg = resolve_workspace(profile="prod-sp", env=env_with(cfg))
    by_env = resolve_workspace(env=env_with(cfg, DATABRICKS_CONFIG_PROFILE="prod-sp"))
    for config in (by_arg, by_env):
        assert config.host == "https://adb-1234567890123456.7.azuredatabricks.net"
        assert config.auth_kind == "oauth-m2m"
        assert config.profile == "prod-sp"


def test_settings_default_profile_is_used_before_default(cfg: Path) -> None:
    cfg.write_text(CONFIG_FILE + "\n[__settings__]\ndefault_profile = prod-sp\n")
    assert resolve_workspace(env=env_with(cfg)).profile == "prod-sp"


def test_profile_is_not_merged_with_default(cfg: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Databricks credentials.*no-token"):
        resolve_workspace(profile="no-token", env=env_with(cfg))


def test_missing_named_profile_names_the_file_and_the_available_profiles(cfg: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_workspace(profile="staging", env=env_with(cfg))
    message = str(info.value)
    assert "'staging'" in message and str(cfg) in message
    assert "DEFAULT, prod-sp, no-token, hostless" in message
    assert info.value.exit_code == 2


def test_named_profile_without_a_config_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_workspace(profile="prod-sp", env=env_with())


def test_explicit_profile_fills_only_what_arguments_and_environment_left_unset(cfg: Path) -> None:
    env = env_with(cfg, DATABRICKS_TOKEN=PAT)
    config = resolve_workspace(profile="no-token", env=env)
    assert config.host == "https://dbc-notoken.cloud.databricks.com"
    assert config.token is not None and config.token.get_secret_value() == PAT


def test_profile_credentials_are_not_sent_to_a_host_from_elsewhere(cfg: Path) -> None:
    env = env_with(cfg, DATABRICKS_HOST="https://other.cloud.databricks.com")
    with pytest.raises(ConfigError, match="refusing to send"):
        resolve_workspace(profile="DEFAULT", env=env)


def test_missing_host_and_credentials_message_says_how_to_set_them() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_workspace(env=env_with())
    message = str(info.value)
    for hint in ("--host", "--token", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "--profile"):
        assert hint in message
    assert "DATABRICKS_CLIENT_ID" in message and "DATABRICKS_CONFIG_PROFILE" in message
    assert "\n" not in message


def test_half_an_oauth_pair_is_reported() -> None:
    env = env_with(DATABRICKS_HOST="x.cloud.databricks.com", DATABRICKS_CLIENT_ID="client-1")
    with pytest.raises(ConfigError, match="both a client id and a client secret"):
        resolve_workspace(env=env)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("dbc-1.cloud.databricks.com", "https://dbc-1.cloud.databricks.com"),
        ("https://dbc-1.cloud.databricks.com/", "https://dbc-1.cloud.databricks.com"),
        ("https://DBC-1.cloud.databricks.com:443/", "https://dbc-1.cloud.databricks.com"),
        ("https://dbc-1.cloud.databricks.com:8443", "https://dbc-1.cloud.databricks.com:8443"),
        (
            "  https://dbc-1.cloud.databricks.com/?o=123#job/4  ",
            "https://dbc-1.cloud.databricks.com",
        ),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://127.0.0.2:9000", "http://127.0.0.2:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_host_is_normalised(given: str, expected: str) -> None:
    assert normalize_host(given) == expected


@pytest.mark.parametrize("host", ["http://dbc-1.cloud.databricks.com", "http://10.0.0.1"])
def test_plain_http_is_refused_for_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ConfigError, match="unencrypted"):
        resolve_workspace(host, PAT, env=env_with())


def test_workspace_id_is_taken_from_a_pasted_browser_url() -> None:
    config = resolve_workspace(
        "https://dbc-1.cloud.databricks.com/?o=4187230015569021", PAT, env=env_with()
    )
    assert config.workspace_id == "4187230015569021"


def test_secrets_never_appear_in_repr_or_str() -> None:
    pat = resolve_workspace("dbc-1.cloud.databricks.com", PAT, env=env_with())
    sp = WorkspaceConfig(
        host="dbc-1.cloud.databricks.com",
        client_id="client-1",
        client_secret=SP_SECRET,  # type: ignore[arg-type]
    )
    for text in (repr(pat), str(pat), repr(sp), str(sp), f"{pat!r}", str(pat.model_dump())):
        assert PAT not in text and SP_SECRET not in text
    assert "dbc-1.cloud.databricks.com" in repr(pat)
    assert sp.auth_kind == "oauth-m2m"


def test_list_profiles_returns_profiles_with_a_host_in_file_order(cfg: Path) -> None:
    assert list_profiles(env_with(cfg)) == ["DEFAULT", "prod-sp", "no-token"]
    assert list_profiles(env_with()) == []


def test_db_path_comes_from_option_then_environment_then_default() -> None:
    assert resolve_db_path("runs.duckdb", {"JOBRUNS_DB": "env.duckdb"}) == Path("runs.duckdb")
    assert resolve_db_path(None, {"JOBRUNS_DB": "env.duckdb"}) == Path("env.duckdb")
    assert resolve_db_path(None, {}) == Path("jobruns.duckdb")


NOW = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-05-01", datetime(2025, 5, 1, tzinfo=UTC)),
        ("2025-05-01T12:00Z", datetime(2025, 5, 1, 12, tzinfo=UTC)),
        ("2025-05-01T12:00:00+02:00", datetime(2025, 5, 1, 10, tzinfo=UTC)),
        ("2025-05-01T12:00", datetime(2025, 5, 1, 12, tzinfo=UTC)),
        ("14d", NOW - timedelta(days=14)),
        ("6h", NOW - timedelta(hours=6)),
        ("30m", NOW - timedelta(minutes=30)),
        ("90s", NOW - timedelta(seconds=90)),
    ],
)
def test_since_accepts_dates_timestamps_and_ages(value: str, expected: datetime) -> None:
    parsed = parse_since(value, NOW)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize("value", ["yesterday", "14", "2025-13-01", "-3d", ""])
def test_since_rejects_garbage_with_examples(value: str) -> None:
    with pytest.raises(UsageError, match=r"2025-05-01.*14d"):
        parse_since(value, NOW)


def test_duration_parses_units_and_combinations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    with pytest.raises(UsageError, match="14d"):
        parse_duration("7 days")
