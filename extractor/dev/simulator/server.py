"""HTTP front of the simulated workspace: auth (PAT, OAuth M2M), faults, admin endpoints.

Serves the Workspace's Jobs 2.2 API (reads, and the repair and cancel writes, each logged) and a SQL
warehouse's Statement Execution API for billing queries on 127.0.0.1 with the real service's status codes,
error bodies and headers. Holds one lock around the workspace; never listens beyond localhost.
"""

from __future__ import annotations

import base64
import json
import math
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._model import ApiError
from ._statements import STATEMENTS_PATH, STORAGE_PATH, Warehouse
from .workspace import Workspace

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
ENDPOINTS = {
    "/api/2.2/jobs/runs/list": "api_list_runs",
    "/api/2.2/jobs/runs/get": "api_get_run",
    "/api/2.2/jobs/runs/get-output": "api_get_output",
    "/api/2.2/jobs/list": "api_list_jobs",
    "/api/2.2/jobs/get": "api_get_job",
    "/api/2.1/clusters/get": "api_get_cluster",
    "/api/2.2/jobs/runs/export": "api_export_run",
    "/api/2.1/clusters/list-node-types": "api_list_node_types",
    "/api/2.0/instance-pools/get": "api_get_instance_pool",
}
# Endpoints that take a JSON body with POST: the writes (each kept in the request log) and
# clusters/events, a read.
POST_ENDPOINTS = {
    "/api/2.2/jobs/runs/repair": "api_repair_run",
    "/api/2.2/jobs/runs/cancel": "api_cancel_run",
    "/api/2.2/jobs/runs/cancel-all": "api_cancel_all_runs",
    "/api/2.1/clusters/events": "api_cluster_events",
}
# Endpoints that act on a run need more than Can View on its job.
MANAGE_PATHS = frozenset(
    {"/api/2.2/jobs/runs/repair", "/api/2.2/jobs/runs/cancel", "/api/2.2/jobs/runs/cancel-all"}
)

RUN_PATHS = frozenset({"/api/2.2/jobs/runs/get", "/api/2.2/jobs/runs/get-output"})


def is_statement_path(path: str) -> bool:
    """The SQL Statement Execution API: POST statements, GET statements/{id}, GET
    statements/{id}/result/chunks/{n}, POST statements/{id}/cancel."""
    return path == STATEMENTS_PATH or path.startswith(STATEMENTS_PATH + "/")


@dataclass(frozen=True)
class Faults:
    """Injected trouble on /api/ requests. Rates are probabilities per request (seeded).

    The SQL warehouse's: `warehouse_start_polls` > 0 stops it (the next statement stays
    PENDING for that many polls while it starts); `billing_no_grant` = 1 fails billing queries
    as for a principal without the system.billing grants, `billing_no_uc` = 1 as for a
    workspace without Unity Catalog."""

    latency_ms: int = 0
    jitter_ms: int = 0
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    retry_after_s: int | None = None
    error_5xx_rate: float = 0.0
    html_502_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    warehouse_start_polls: int = 0
    billing_no_grant: int = 0
    billing_no_uc: int = 0


class _Bucket:
    def __init__(self, rps: float, burst: int) -> None:
        self.rps, self.capacity = rps, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rps)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rps


METADATA_SERVICE_PATH = "/_metadata/token"


class SimServer:
    """A running simulator. Use as a context manager or call stop()."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        faults: Faults | None = None,
        token: str | None = None,
        port: int = 0,
        client_id: str | None = None,
        client_secret: str | None = None,
        oauth_expires_in: int = 3600,
        forbidden_jobs: set[int] | None = None,
        manage_forbidden_jobs: set[int] | None = None,
    ) -> None:
        self.workspace = workspace
        seed = workspace.seed
        self.token = token or f"dapi{random.Random(seed * 31 + 1).getrandbits(128):032x}"
        self.client_id = client_id or f"{random.Random(seed * 31 + 2).getrandbits(128):032x}"
        self.client_secret = (
            client_secret or f"dose{random.Random(seed * 31 + 3).getrandbits(128):032x}"
        )
        self.oauth_expires_in = oauth_expires_in
        self.forbidden_jobs: set[int] = set(forbidden_jobs or ())
        # Jobs the token may view but not act on (no CAN MANAGE RUN): writes answer 403.
        self.manage_forbidden_jobs: set[int] = set(manage_forbidden_jobs or ())
        self._log: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._oauth_tokens: dict[str, float] = {}
        self._revoked: set[str] = set()
        self._counts: dict[str, int] = {}
        self._statuses: dict[str, int] = {}
        self._ok: dict[str, int] = {}  # 2xx responses per path
        self._injected: dict[str, int] = {}
        self._faults = Faults()
        self._fault_rng = random.Random(0)
        self._bucket: _Bucket | None = None
        self.warehouse = Warehouse(
            f"{random.Random(seed * 31 + 4).getrandbits(64):016x}",
            lambda: self.url,
            self._billing_rows,
            seed=seed,
        )
        self.set_faults(faults or Faults())
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="sim-server", daemon=True
        )
        self._thread.start()

    # -------------------------------------------------------------------- control
    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self.set_faults(value)

    def set_faults(self, faults: Faults | None = None, **changes: Any) -> Faults:
        """Replace the faults (or change some fields); resets the fault RNG and rate bucket."""
        with self.lock:
            f = replace(faults or self._faults, **changes)
            self._faults = f
            self._fault_rng = random.Random(f.seed)
            self._bucket = None
            if f.rate_limit_rps:
                burst = f.rate_limit_burst or max(1, math.ceil(f.rate_limit_rps))
                self._bucket = _Bucket(f.rate_limit_rps, burst)
            self.warehouse.configure(
                start_polls=f.warehouse_start_polls,
                no_grant=bool(f.billing_no_grant),
                no_uc=bool(f.billing_no_uc),
            )
            return f

    def _billing_rows(self, table: str) -> list[dict[str, str]]:
        with self.lock:
            if table == "usage":
                return self.workspace.billing_rows()
            return self.workspace.list_price_rows()

    def advance(self, seconds: float) -> int:
        with self.lock:
            self.workspace.advance(seconds)
            return self.workspace.now_ms

    def revoke(self, token: str) -> None:
        """Make a PAT or OAuth token invalid (403 "Invalid access token.")."""
        with self.lock:
            self._revoked.add(token)

    def stats(self) -> dict[str, Any]:
        """Requests per endpoint path (any status, and `ok`: 2xx only), responses per status, and
        faults injected per kind."""
        with self.lock:
            return {
                "requests": dict(self._counts),
                "ok": dict(self._ok),
                "statuses": dict(self._statuses),
                "faults": dict(self._injected),
                "now_ms": self.workspace.now_ms,
            }

    def request_log(self, method: str | None = None) -> list[dict[str, Any]]:
        """API requests in arrival order: {method, path, status, body} (body: POSTs' JSON)."""
        with self.lock:
            return [dict(e) for e in self._log if method is None or e["method"] == method]

    def log(self, method: str, path: str, status: int, body: Any) -> None:
        with self.lock:
            self._log.append({"method": method, "path": path, "status": status, "body": body})

    def reset_stats(self) -> None:
        with self.lock:
            self._log.clear()
            self._counts.clear()
            self._ok.clear()
            self._statuses.clear()
            self._injected.clear()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------- request logic
    def count(self, path: str, status: int) -> None:
        with self.lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            self._statuses[str(status)] = self._statuses.get(str(status), 0) + 1
            if 200 <= status < 300:
                self._ok[path] = self._ok.get(path, 0) + 1

    def inject(self) -> tuple[str, float] | None:
        """Decide the fault for one API request: (kind, delay seconds) or None."""
        with self.lock:
            f, rng = self._faults, self._fault_rng
            delay = (f.latency_ms + (rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0)) / 1000
            kind = ""
            if self._bucket is not None:
                wait = self._bucket.take()
                if wait > 0:
                    kind = f"429:{f.retry_after_s or max(1, math.ceil(wait))}"
            if not kind:
                x = rng.random()
                if x < f.drop_rate:
                    kind = "drop"
                elif x < f.drop_rate + f.html_502_rate:
                    kind = "502"
                elif x < f.drop_rate + f.html_502_rate + f.error_5xx_rate:
                    kind = "500" if rng.random() < 0.5 else "503"
            if kind:
                name = kind.split(":")[0]
                self._injected[name] = self._injected.get(name, 0) + 1
            if not kind and not delay:
                return None
            return kind, delay

    def authenticate(self, header: str | None) -> ApiError | None:
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            return ApiError(
                401, 401, "Credential was not sent or was of an unsupported type for this API."
            )
        tok = header[7:].strip()
        with self.lock:
            if tok in self._revoked:
                return ApiError(403, 403, "Invalid access token.")
            if tok == self.token:
                return None
            expiry = self._oauth_tokens.get(tok)
            if expiry is not None and expiry > time.monotonic():
                return None
        return ApiError(403, 403, "Invalid access token.")

    def issue_token(self, form: dict[str, str], basic: str | None) -> tuple[int, dict[str, Any]]:
        cid, secret = form.get("client_id"), form.get("client_secret")
        if basic:
            try:
                cid, _, secret = base64.b64decode(basic).decode().partition(":")
            except ValueError:
                cid = secret = None
        if form.get("grant_type") != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be client_credentials",
            }
        if cid != self.client_id or secret != self.client_secret:
            return 401, {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
            }
        tok = f"eyJ{secrets.token_urlsafe(48)}"
        with self.lock:
            self._oauth_tokens[tok] = time.monotonic() + self.oauth_expires_in
        return 200, {
            "access_token": tok,
            "token_type": "Bearer",
            "expires_in": self.oauth_expires_in,
            "scope": form.get("scope") or "all-apis",
        }

    @property
    def metadata_service_url(self) -> str:
        """Where the Databricks metadata service of this workspace would answer (a local agent
        handing out short-lived tokens, read by the SDK's `metadata-service` auth)."""
        return f"{self.url}{METADATA_SERVICE_PATH}"

    def issue_metadata_token(
        self, version: str | None, host: str | None
    ) -> tuple[int, dict[str, Any]]:
        """The metadata service's answer: a token for this host, `expires_on` in epoch seconds.

        The SDK sends `X-Databricks-Metadata-Version: 1` and `X-Databricks-Host: <host>` and
        reads access_token, token_type and expires_on (databricks/sdk/credentials_provider.py,
        MetadataServiceTokenSource)."""
        if version != "1":
            return 400, {"error": "unsupported metadata version", "version": version}
        if (host or "").rstrip("/") != self.url:
            return 403, {"error": "this metadata service serves only " + self.url}
        tok = f"eyJ{secrets.token_urlsafe(48)}"
        with self.lock:
            self._oauth_tokens[tok] = time.monotonic() + self.oauth_expires_in
        return 200, {
            "access_token": tok,
            "token_type": "Bearer",
            "expires_on": int(time.time()) + self.oauth_expires_in,
        }

    def call(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if is_statement_path(path):
            return self.warehouse.call(path, params)
        method = getattr(self.workspace, ENDPOINTS.get(path) or POST_ENDPOINTS[path])
        with self.lock:
            if path in MANAGE_PATHS:
                owner = self._owner(params)
                if owner is None and params.get("job_id") not in (None, ""):
                    owner = int(params["job_id"])
                if owner in self.forbidden_jobs or owner in self.manage_forbidden_jobs:
                    raise ApiError(
                        403,
                        "PERMISSION_DENIED",
                        f"User does not have Can Manage Run permission on job {owner}.",
                    )  # the wording is our assumption; the code and status are the API's
            if path in RUN_PATHS and self.forbidden_jobs:
                owner = self._owner(params)
                if owner in self.forbidden_jobs:
                    raise ApiError(
                        403,
                        "PERMISSION_DENIED",
                        f"User does not have Can View permission on job {owner}.",
                    )
            if path == "/api/2.2/jobs/get" and self.forbidden_jobs:
                jid = params.get("job_id", "")
                if jid.isdigit() and int(jid) in self.forbidden_jobs:
                    raise ApiError(
                        403,
                        "PERMISSION_DENIED",
                        f"User does not have Can View permission on job {jid}.",
                    )
            result: dict[str, Any] = method(params)
            return result

    def _owner(self, params: dict[str, Any]) -> int | None:
        try:
            rid = int(params.get("run_id", ""))
        except (TypeError, ValueError):
            rid = -1
        return self.workspace.owner_job(rid)

    def admin(self, method: str, path: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        ws = self.workspace
        if path == "/_sim/stats" and method == "GET":
            return 200, self.stats()
        if path == "/_sim/now" and method == "GET":
            return 200, {"now_ms": ws.now_ms}
        if path == "/_sim/advance" and method == "POST":
            return 200, {"now_ms": self.advance(float(params.get("seconds", "0")))}
        if path == "/_sim/faults" and method in ("GET", "POST"):
            if method == "POST":
                changes = json.loads(body or b"{}") if body else {}
                changes.update({k: v for k, v in params.items()})
                known = {f.name: f.type for f in fields(Faults)}
                typed: dict[str, Any] = {}
                for k, v in changes.items():
                    if k not in known:
                        return 400, {"error": f"unknown fault {k}"}
                    typed[k] = (
                        None
                        if v in (None, "", "null")
                        else (
                            float(v) if "rate" in k and k != "rate_limit_burst" else int(float(v))
                        )
                    )
                self.set_faults(**typed)
            return 200, asdict(self._faults)
        if path == "/_sim/ground_truth" and method == "GET":
            start = params.get("start_ms")
            end = params.get("end_ms")
            with self.lock:
                truth = ws.ground_truth(int(start) if start else None, int(end) if end else None)
            return 200, {table: [row for row in rows.values()] for table, rows in truth.items()}
        if path == "/_sim/runs/delete" and method == "POST":
            with self.lock:
                ws.delete_run(int(params["run_id"]))
            return 200, {}
        if path == "/_sim/runs/repair" and method == "POST":
            with self.lock:
                rid = ws.repair_run(int(params["run_id"]))
            return 200, {"repair_id": rid}
        return 404, {"error": f"no admin endpoint {method} {path}"}


def _handler_for(sim: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # header and body go out as separate writes
        server_version = "databricks-sim"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(
            self,
            status: int,
            body: Any,
            *,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            if isinstance(body, bytes):
                data = body
            else:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Databricks-Org-Id", str(sim.workspace.workspace_id))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            body = self._body()
            if path.startswith("/_sim/"):
                try:
                    status, out = sim.admin(method, path, params, body)
                except (KeyError, ValueError) as exc:
                    status, out = 400, {"error": str(exc)}
                self._send(status, out)
                return
            if path == "/.well-known/databricks-config":
                sim.count(path, 200)
                self._send(
                    200,
                    {
                        "oidc_endpoint": f"{sim.url}/oidc",
                        "workspace_id": str(sim.workspace.workspace_id),
                        "cloud": sim.workspace.cloud,
                    },
                )
                return
            if path == "/oidc/.well-known/oauth-authorization-server":
                sim.count(path, 200)
                self._send(
                    200,
                    {
                        "issuer": f"{sim.url}/oidc",
                        "authorization_endpoint": f"{sim.url}/oidc/v1/authorize",
                        "token_endpoint": f"{sim.url}/oidc/v1/token",
                        "grant_types_supported": [
                            "client_credentials",
                            "authorization_code",
                            "refresh_token",
                        ],
                    },
                )
                return
            if path == METADATA_SERVICE_PATH and method == "GET":
                status, out = sim.issue_metadata_token(
                    self.headers.get("X-Databricks-Metadata-Version"),
                    self.headers.get("X-Databricks-Host"),
                )
                sim.count(path, status)
                self._send(status, out)
                return
            if path == "/oidc/v1/token" and method == "POST":
                form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
                auth = self.headers.get("Authorization") or ""
                basic = auth[6:].strip() if auth.startswith("Basic ") else None
                status, out = sim.issue_token(form, basic)
                sim.count(path, status)
                self._send(status, out)
                return
            if path.startswith(STORAGE_PATH) and method == "GET":
                # Cloud storage behind a presigned link: no workspace auth, no API faults.
                status, data, kind = sim.warehouse.download(
                    path[len(STORAGE_PATH) :], params, self.headers.get("Authorization")
                )
                sim.count(STORAGE_PATH, status)
                self._send(status, data, content_type=kind)
                return
            if not is_statement_path(path) and (
                (method == "GET" and path not in ENDPOINTS)
                or (method == "POST" and path not in POST_ENDPOINTS)
            ):
                sim.count(path, 404)
                self._send(
                    404,
                    {
                        "error_code": "ENDPOINT_NOT_FOUND",
                        "message": f"No API found for '{method} {path}'",
                    },
                )
                return
            fault = sim.inject()
            if fault is not None:
                kind, delay = fault
                if delay:
                    time.sleep(delay)
                if kind == "drop":
                    sim.count(path, 0)
                    self.close_connection = True
                    return
                if kind.startswith("429"):
                    sim.count(path, 429)
                    self._send(
                        429,
                        {
                            "error_code": "REQUEST_LIMIT_EXCEEDED",
                            "message": "Too many requests. Please wait a moment and try again.",
                        },
                        headers={"Retry-After": kind.split(":")[1]},
                    )
                    return
                if kind == "502":
                    sim.count(path, 502)
                    self._send(502, HTML_502, content_type="text/html")
                    return
                if kind == "500":
                    sim.count(path, 500)
                    self._send(
                        500,
                        {
                            "error_code": "INTERNAL_ERROR",
                            "message": "Internal error occurred while processing the request.",
                        },
                    )
                    return
                if kind == "503":
                    sim.count(path, 503)
                    self._send(
                        503,
                        {
                            "error_code": "TEMPORARILY_UNAVAILABLE",
                            "message": f"The service at {path} is temporarily unavailable. Please try again later.",
                        },
                    )
                    return
            request: Any = params
            if method == "POST":
                try:
                    request = json.loads(body or b"{}")
                except ValueError:
                    request = None
                if not isinstance(request, dict):
                    sim.count(path, 400)
                    sim.log(method, path, 400, body.decode(errors="replace"))
                    self._send(
                        400,
                        {"error_code": "MALFORMED_REQUEST", "message": "Malformed JSON body."},
                    )
                    return
            err = sim.authenticate(self.headers.get("Authorization"))
            if err is None:
                try:
                    out = sim.call(path, request)
                    sim.count(path, 200)
                    sim.log(method, path, 200, request if method == "POST" else None)
                    self._send(200, out)
                    return
                except ApiError as exc:
                    err = exc
            headers = (
                {"X-Databricks-Reason-Phrase": err.message}
                if err.status == 403 and err.error_code == 403
                else None
            )
            sim.count(path, err.status)
            sim.log(method, path, err.status, request if method == "POST" else None)
            self._send(err.status, err.body(), headers=headers)

    return Handler


def serve(
    workspace: Workspace,
    *,
    faults: Faults | None = None,
    token: str | None = None,
    port: int = 0,
    client_id: str | None = None,
    client_secret: str | None = None,
    oauth_expires_in: int = 3600,
    forbidden_jobs: set[int] | None = None,
    manage_forbidden_jobs: set[int] | None = None,
) -> SimServer:
    """Start serving `workspace` on 127.0.0.1 (port 0 = ephemeral); returns the running server."""
    return SimServer(
        workspace,
        faults=faults,
        token=token,
        port=port,
        client_id=client_id,
        client_secret=client_secret,
        oauth_expires_in=oauth_expires_in,
        forbidden_jobs=forbidden_jobs,
        manage_forbidden_jobs=manage_forbidden_jobs,
    )
