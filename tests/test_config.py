"""Where host, credentials and the store path come from; parsing of --since and durations.

Credentials are resolved by databricks-sdk's Config against a simulated workspace (its host
metadata, OIDC discovery, token and metadata-service endpoints), never the developer's setup.
Where the SDK differs from jobruns' former resolver, the test says why.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from extractor.config import (
    AUTH_TYPES,
    WorkspaceConfig,
    list_profiles,
    normalize_host,
    parse_duration,
    parse_since,
    resolve_db_path,
    resolve_workspace,
)
from extractor.dev.simulator import SimServer, Workspace, serve
from extractor.errors import ConfigError, UsageError
from tests.conftest import START_MS, jobruns

PAT = "dapi-secret-pat-0123456789"
FILE_PAT = "dapi-file-token-abcdef"
SP_ID = "9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03"
SP_SECRET = "dose-sp-secret-xyz"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = serve(
        Workspace.generate(5, jobs=2, runs=4, now_ms=START_MS),
        token=PAT,
        client_id=SP_ID,
        client_secret=SP_SECRET,
    )
    yield server
    server.stop()


def other_host(sim: SimServer) -> str:
    """The same simulator under another loopback name: a different host to the resolver."""
    return f"http://localhost:{sim.port}"


@pytest.fixture
def cfg(tmp_path: Path, sim: SimServer) -> Path:
    path = tmp_path / "databrickscfg"
    path.write_text(
        f"""
[DEFAULT]
host  = {sim.url}
token = {FILE_PAT}

[prod-sp]
host          = {sim.url}/
client_id     = {SP_ID}
client_secret = {SP_SECRET}
auth_type     = oauth-m2m

[no-token]
host = {other_host(sim)}

[hostless]
token = dapi-orphan
"""
    )
    return path


def env_with(cfg: Path | None = None, /, **values: str) -> dict[str, str]:
    env = {"HOME": "/nonexistent-home"}
    env["DATABRICKS_CONFIG_FILE"] = str(cfg) if cfg else "/nonexistent/databrickscfg"
    env.update(values)
    return env


def bearer(config: WorkspaceConfig) -> str:
    return config.credentials.headers()["Authorization"].removeprefix("Bearer ")


def source(config: WorkspaceConfig, name: str) -> str:
    return next(s.source for s in config.sources if s.name == name)


def test_arguments_win_over_environment_and_file(cfg: Path, sim: SimServer) -> None:
    env = env_with(cfg, DATABRICKS_HOST=other_host(sim), DATABRICKS_TOKEN="dapi-env")
    config = resolve_workspace(sim.url, PAT, env=env)
    assert config.host == sim.url
    assert bearer(config) == PAT
    assert config.auth_kind == "pat"
    assert config.profile is None
    assert source(config, "host") == "--host" and source(config, "token") == "--token"


def test_environment_host_and_token_are_used_without_reading_the_file(
    cfg: Path, sim: SimServer
) -> None:
    env = env_with(cfg, DATABRICKS_HOST=sim.url + "/", DATABRICKS_TOKEN=PAT)
    config = resolve_workspace(env=env)
    assert config.host == sim.url
    assert config.auth_kind == "pat" and bearer(config) == PAT
    assert source(config, "token") == "environment DATABRICKS_TOKEN"
    assert config.config_file is None


def test_environment_host_hides_the_default_profile_like_the_sdk(cfg: Path, sim: SimServer) -> None:
    env = env_with(cfg, DATABRICKS_HOST=sim.url)
    with pytest.raises(ConfigError, match="no Databricks credentials"):
        resolve_workspace(env=env)


def test_oauth_m2m_from_environment_gets_a_token_from_the_workspace(sim: SimServer) -> None:
    env = env_with(
        DATABRICKS_HOST=sim.url, DATABRICKS_CLIENT_ID=SP_ID, DATABRICKS_CLIENT_SECRET=SP_SECRET
    )
    config = resolve_workspace(env=env)
    assert config.auth_kind == "oauth-m2m"
    token = bearer(config)
    assert token.startswith("eyJ") and sim.authenticate(f"Bearer {token}") is None
    assert source(config, "client_secret") == "environment DATABRICKS_CLIENT_SECRET"


def test_token_and_client_secret_together_need_an_auth_type(sim: SimServer) -> None:
    # The former resolver let the token win; the SDK refuses to guess between two methods
    # (Config._validate: "more than one authorization method configured"), and so do we now.
    both = {
        "DATABRICKS_HOST": sim.url,
        "DATABRICKS_TOKEN": PAT,
        "DATABRICKS_CLIENT_ID": SP_ID,
        "DATABRICKS_CLIENT_SECRET": SP_SECRET,
    }
    with pytest.raises(ConfigError, match=r"more than one.*--auth-type") as info:
        resolve_workspace(env=env_with(**both))
    assert PAT not in str(info.value) and SP_SECRET not in str(info.value)
    oauth = resolve_workspace(env=env_with(**both, DATABRICKS_AUTH_TYPE="oauth-m2m"))
    assert oauth.auth_kind == "oauth-m2m" and bearer(oauth) != PAT
    pat = resolve_workspace(auth_type="pat", env=env_with(**both))
    assert pat.auth_kind == "pat" and bearer(pat) == PAT
    assert source(pat, "auth_type") == "--auth-type"


def test_unknown_auth_type_lists_the_supported_ones(sim: SimServer) -> None:
    with pytest.raises(ConfigError, match=r"unknown auth type 'kerberos'.*azure-cli"):
        resolve_workspace(sim.url, PAT, auth_type="kerberos", env=env_with())


def test_every_auth_type_offered_is_one_the_sdk_knows() -> None:
    from databricks.sdk.credentials_provider import DefaultCredentials

    known = {provider.auth_type() for provider in DefaultCredentials()._auth_providers}
    assert set(AUTH_TYPES) <= known


def test_forced_auth_type_without_its_settings_says_so(sim: SimServer) -> None:
    with pytest.raises(ConfigError, match="auth type 'oauth-m2m' cannot sign in here"):
        resolve_workspace(sim.url, PAT, auth_type="oauth-m2m", env=env_with())


def test_default_profile_is_read_when_nothing_else_is_set(cfg: Path, sim: SimServer) -> None:
    config = resolve_workspace(env=env_with(cfg))
    assert config.host == sim.url
    assert bearer(config) == FILE_PAT
    assert config.profile == "DEFAULT"
    assert source(config, "token") == f"profile DEFAULT of {cfg}"


def test_named_profile_from_argument_and_from_environment(cfg: Path, sim: SimServer) -> None:
    by_arg = resolve_workspace(profile="prod-sp", env=env_with(cfg))
    by_env = resolve_workspace(env=env_with(cfg, DATABRICKS_CONFIG_PROFILE="prod-sp"))
    for config in (by_arg, by_env):
        assert config.host == sim.url
        assert config.auth_kind == "oauth-m2m"
        assert config.profile == "prod-sp"
    assert source(by_arg, "profile") == "--profile"
    assert source(by_env, "profile") == "environment DATABRICKS_CONFIG_PROFILE"


def test_settings_default_profile_is_used_before_default(cfg: Path) -> None:
    cfg.write_text(cfg.read_text() + "\n[__settings__]\ndefault_profile = prod-sp\n")
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


def test_explicit_profile_fills_only_what_arguments_and_environment_left_unset(
    cfg: Path, sim: SimServer
) -> None:
    env = env_with(cfg, DATABRICKS_TOKEN=PAT)
    config = resolve_workspace(profile="no-token", env=env)
    assert config.host == other_host(sim)
    assert bearer(config) == PAT


def test_profile_credentials_are_not_sent_to_a_host_from_elsewhere(
    cfg: Path, sim: SimServer
) -> None:
    env = env_with(cfg, DATABRICKS_HOST=other_host(sim))
    with pytest.raises(ConfigError, match="refusing to send"):
        resolve_workspace(profile="DEFAULT", env=env)


def test_missing_host_and_credentials_message_says_how_to_set_them() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_workspace(env=env_with())
    message = str(info.value)
    assert "no Databricks host configured" in message
    for hint in ("--host", "--token", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "--profile"):
        assert hint in message
    assert "DATABRICKS_CLIENT_ID" in message and "DATABRICKS_CONFIG_PROFILE" in message
    assert "\n" not in message


def test_half_an_oauth_pair_is_reported(sim: SimServer) -> None:
    env = env_with(DATABRICKS_HOST=sim.url, DATABRICKS_CLIENT_ID="client-1")
    with pytest.raises(ConfigError, match="both a client id and a client secret"):
        resolve_workspace(env=env)


def test_metadata_service_token_is_accepted_by_the_workspace(sim: SimServer) -> None:
    env = env_with(
        DATABRICKS_HOST=sim.url, DATABRICKS_METADATA_SERVICE_URL=sim.metadata_service_url
    )
    config = resolve_workspace(env=env)
    assert config.auth_kind == "metadata-service"
    token = bearer(config)
    assert token.startswith("eyJ") and sim.authenticate(f"Bearer {token}") is None
    shown = {s.name: s.value for s in config.sources}
    assert shown["metadata_service_url"] == "********"


def test_metadata_service_of_another_host_is_refused(sim: SimServer) -> None:
    # The SDK names the workspace in X-Databricks-Host; the simulator's agent serves only its own.
    env = env_with(
        DATABRICKS_HOST=other_host(sim), DATABRICKS_METADATA_SERVICE_URL=sim.metadata_service_url
    )
    with pytest.raises(ConfigError, match="metadata-service"):
        resolve_workspace(env=env)


def fake_az(tmp_path: Path) -> Path:
    """An `az` that answers `account get-access-token` the way the Azure CLI does."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "az"
    script.write_text(
        "#!/bin/sh\n"
        'echo \'{"accessToken": "eyJfake-az-token", "tokenType": "Bearer", '
        '"expiresOn": "2099-01-01 00:00:00.000000"}\'\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


def test_azure_cli_does_not_apply_to_a_non_azure_host(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK offers azure-cli only for Azure Databricks hosts (Config.effective_azure_login_app_id
    # is None elsewhere), so a fake `az` cannot sign in to the loopback simulator: forcing it
    # says so instead of sending an Azure token to a host that is not Azure Databricks.
    monkeypatch.setenv("PATH", f"{fake_az(tmp_path)}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ConfigError, match="'azure-cli' cannot sign in here"):
        resolve_workspace(sim.url, auth_type="azure-cli", env=env_with())


def test_auth_describe_shows_the_method_and_sources_but_no_secret(
    capsys: pytest.CaptureFixture[str], cfg: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    code, text = jobruns(capsys, "auth", "describe", "--profile", "prod-sp")
    assert code == 0, text
    assert f"Host: {sim.url}" in text and "Authenticated with: oauth-m2m" in text
    assert "Sign-in: ok" in text
    assert f"client_id: {SP_ID} (from profile prod-sp of {cfg})" in text
    assert f"client_secret: ******** (from profile prod-sp of {cfg})" in text
    assert "profile: prod-sp (from --profile)" in text
    assert SP_SECRET not in text

    monkeypatch.setenv("DATABRICKS_TOKEN", PAT)
    code, text = jobruns(capsys, "auth", "describe", "--host", sim.url)
    assert code == 0, text
    assert "token: ******** (from environment DATABRICKS_TOKEN)" in text
    assert f"host: {sim.url} (from --host)" in text
    assert PAT not in text


def test_auth_describe_reports_a_refused_sign_in_without_the_secret(
    capsys: pytest.CaptureFixture[str], sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", SP_ID)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", "dose-wrong-secret-000")
    code, text = jobruns(capsys, "auth", "describe", "--host", sim.url)
    assert code == 1
    assert "Sign-in: failed" in text and "invalid_client" in text
    assert "dose-wrong-secret-000" not in text


def test_client_reads_the_jobs_api_with_oauth_m2m(sim: SimServer) -> None:
    from extractor.client import JobsClient

    env = env_with(
        DATABRICKS_HOST=sim.url, DATABRICKS_CLIENT_ID=SP_ID, DATABRICKS_CLIENT_SECRET=SP_SECRET
    )
    sim.reset_stats()
    with JobsClient(resolve_workspace(env=env)) as client:
        page = client.list_runs_page(start_time_from=None, start_time_to=None)
        jobs = list(client.iter_jobs())
    assert page["runs"] and len(jobs) == 2
    assert sim.stats()["requests"]["/oidc/v1/token"] == 1
    assert "403" not in sim.stats()["statuses"]


def test_client_gets_a_new_oauth_token_after_a_revoked_one(sim: SimServer) -> None:
    from extractor.client import JobsClient

    env = env_with(
        DATABRICKS_HOST=sim.url, DATABRICKS_CLIENT_ID=SP_ID, DATABRICKS_CLIENT_SECRET=SP_SECRET
    )
    with JobsClient(resolve_workspace(env=env)) as client:
        client.get_run_page(next(iter(sim.workspace.runs)))
        first = bearer(client.config)
        sim.revoke(first)
        client.get_run_page(next(iter(sim.workspace.runs)))
        assert bearer(client.config) != first


def test_workspace_id_is_taken_from_a_pasted_browser_url(sim: SimServer) -> None:
    config = resolve_workspace(f"{sim.url}/?o=4187230015569021", PAT, env=env_with())
    assert config.workspace_id == "4187230015569021"
    assert source(config, "workspace_id") == "?o= of the host URL"


@pytest.mark.parametrize("host", ["http://dbc-1.cloud.databricks.com", "http://10.0.0.1"])
def test_plain_http_is_refused_for_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ConfigError, match="unencrypted"):
        resolve_workspace(host, PAT, env=env_with())


def test_secrets_never_appear_in_repr_or_str(sim: SimServer) -> None:
    pat = resolve_workspace(sim.url, PAT, env=env_with())
    static = WorkspaceConfig.with_token("dbc-1.cloud.databricks.com", PAT)
    texts = [repr(pat), str(pat), repr(static), str(static), repr(static.credentials)]
    texts += [repr(pat.credentials), repr(pat.sources)]
    for text in texts:
        assert PAT not in text
    assert sim.url in repr(pat) and static.host == "https://dbc-1.cloud.databricks.com"


def test_list_profiles_returns_profiles_with_a_host_in_file_order(cfg: Path) -> None:
    assert list_profiles(env_with(cfg)) == ["DEFAULT", "prod-sp", "no-token"]
    assert list_profiles(env_with()) == []


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


def test_a_cron_extract_of_a_store_with_its_views_loads_no_price_models(
    sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The cost module's price models (pydantic) are for importing prices and creating the
    # views; a cron extract of a store whose views are current does without them.
    db = str(tmp_path / "cron.duckdb")
    signed_in = ("--host", sim.url, "--token", PAT)
    assert jobruns(capsys, "extract", "--quiet", "--db", db, *signed_in)[0] == 0
    script = f"""
import sys
from extractor.cli import main
try:
    main(["extract", "--quiet", "--db", {db!r}, *{signed_in!r}])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core")))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env["DATABRICKS_CONFIG_FILE"] = str(tmp_path / "no-databrickscfg")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_signing_in_loads_the_sdk_core_and_the_whole_sdk_stays_importable(sim: SimServer) -> None:
    # Sign-in loads databricks.sdk.core without the package's service modules (a second of
    # import on every cron start); a later `import databricks.sdk` still gets all of it.
    script = f"""
import sys
from extractor.config import resolve_workspace
config = resolve_workspace(host={sim.url!r}, token={PAT!r}, env={{}})
assert config.auth_type == "pat", config
loaded = sorted(m for m in sys.modules if m.startswith("databricks.sdk.service."))
assert "databricks.sdk.service.jobs" not in loaded, loaded
import threading
import databricks.sdk
# Threads asking at once all wait for the package's __init__, which runs once.
seen = []
threads = [
    threading.Thread(target=lambda: seen.append(databricks.sdk.WorkspaceClient))
    for _ in range(4)
]
for t in threads: t.start()
for t in threads: t.join()
assert len(seen) == 4 and len(set(seen)) == 1, seen
from databricks.sdk import WorkspaceClient
assert WorkspaceClient is seen[0]
from databricks.sdk.service.jobs import Run
assert "databricks.sdk.service.jobs" in sys.modules
assert databricks.sdk.core.Config in type(config.credentials._config).__mro__
client = WorkspaceClient(host={sim.url!r}, token={PAT!r}, auth_type="pat")
assert [r.run_id for r in client.jobs.list_runs(limit=2)], "no runs"
try:
    databricks.sdk.no_such_name
except AttributeError:
    print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
