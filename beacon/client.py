"""``BeaconClient``: the one way notebooks, the CLI and tests talk HTTP to a runner.

* One typed method per endpoint; raw :meth:`BeaconClient.request` for the cases a test must shape
  itself (wrong content type, oversized body, …).
* Tokens are given by the *name* of an environment variable (``token_env="ADMIN_TOKEN"``), so a
  notebook or a shell history never holds a secret.
* Every error response becomes one exception, :class:`BeaconAPIError`, carrying the RFC 9457
  problem's ``status``, ``code``, ``detail`` and ``request_id``.
* Every call is timed and recorded as a :class:`CallRecord` (method, route template, status,
  duration, request id) for the latency tables of the Day-1 report; observers can subscribe.
* ``Idempotency-Key`` is a keyword on every POST.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from beacon import __version__
from beacon.worker.lifecycle import JOB_TERMINAL

if TYPE_CHECKING:
    import pandas as pd

JSON = dict[str, Any]
T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
TERMINAL_JOB_STATES = JOB_TERMINAL
"""The job states a wait ends on (the job state machine's own set, beacon.worker.lifecycle)."""
USER_AGENT = f"beacon-client/{__version__}"


# --- errors -----------------------------------------------------------------------------------------


class BeaconError(Exception):
    """Base class of the client's errors."""


class BeaconConfigError(BeaconError):
    """The client is mis-configured (e.g. a token environment variable is not set)."""


class BeaconConnectionError(BeaconError):
    """The runner could not be reached or did not answer in time."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f"{method} {url}: {reason}")
        self.method = method
        self.url = url
        self.reason = reason


class BeaconAPIError(BeaconError):
    """The runner answered with an error status; ``problem`` is its RFC 9457 body (or a synthesis)."""

    def __init__(self, method: str, url: str, status: int, problem: JSON, headers: Mapping[str, str]) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.problem = problem
        self.headers = dict(headers)
        self.code: str = str(problem.get("code") or f"http_{status}")
        self.title: str | None = problem.get("title")
        self.detail: str | None = problem.get("detail")
        self.request_id: str | None = problem.get("request_id") or headers.get("x-request-id")
        self.errors: list[JSON] = list(problem.get("errors") or [])
        super().__init__(
            f"{method} {url} → {status} {self.code}"
            + (f": {self.detail}" if self.detail else "")
            + (f" (request_id {self.request_id})" if self.request_id else "")
        )

    @classmethod
    def from_response(cls, response: httpx.Response) -> BeaconAPIError:
        return cls(
            response.request.method,
            str(response.request.url),
            response.status_code,
            problem_of(response),
            response.headers,
        )


def problem_of(response: httpx.Response) -> JSON:
    """The problem document of an error response; a synthesised one if the body is not problem+json."""
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
    return {
        "status": response.status_code,
        "code": f"http_{response.status_code}",
        "title": response.reason_phrase,
        "detail": response.text[:500] if response.text else None,
        "request_id": response.headers.get("x-request-id"),
    }


# --- call records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call as the client saw it."""

    method: str
    route: str
    """The route template (``/api/v1/jobs/{id}``), so calls group by endpoint."""
    url: str
    status: int | None
    """None when the runner could not be reached."""
    started_at: float
    """UNIX epoch seconds."""
    duration_s: float
    request_id: str | None
    code: str | None
    """The problem code of an error response, or the connection error."""
    client: str
    """The client's label (usually the role whose token it holds)."""

    def to_json(self) -> JSON:
        return asdict(self)


CallObserver = Callable[[CallRecord], None]


@dataclass
class CallLog:
    """Calls recorded by one or more clients (a client and the clients derived from it share one)."""

    records: list[CallRecord] = field(default_factory=list)
    observers: list[CallObserver] = field(default_factory=list)
    limit: int = 100_000

    def add(self, record: CallRecord) -> None:
        if len(self.records) >= self.limit:
            del self.records[: self.limit // 10]
        self.records.append(record)
        for observer in list(self.observers):
            observer(record)

    def subscribe(self, observer: CallObserver) -> Callable[[], None]:
        """Call ``observer`` for every future record; returns an unsubscribe function."""
        self.observers.append(observer)
        return lambda: self.observers.remove(observer) if observer in self.observers else None


# --- request descriptions ---------------------------------------------------------------------------


Parse = Literal["json", "text", "response"]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to make: method, route, path and how its answer is read (built by ``ROUTES``)."""

    method: str
    route: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    """A body sent as these exact bytes (instead of ``json``)."""
    headers: Mapping[str, str] | None = None
    parse: Parse = "json"
    ok: Sequence[int] = ()
    """Extra statuses that are not errors (e.g. 503 from /health/ready is an answer, not a failure)."""


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _idem(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


class _Routes:
    """The runner's endpoints as :class:`Call` builders (one place for paths and parameters)."""

    # health and identity
    @staticmethod
    def health() -> Call[JSON]:
        return Call("GET", "/health", "/health")

    @staticmethod
    def metrics() -> Call[str]:
        """Prometheus metrics (text exposition format)."""
        return Call("GET", "/metrics", "/metrics", parse="text")

    @staticmethod
    def openapi() -> Call[JSON]:
        return Call("GET", "/openapi.json", "/openapi.json")

    @staticmethod
    def ready() -> Call[httpx.Response]:
        return Call("GET", "/health/ready", "/health/ready", parse="response", ok=(503,))

    @staticmethod
    def live() -> Call[JSON]:
        return Call("GET", "/health/live", "/health/live")

    @staticmethod
    def whoami() -> Call[JSON]:
        return Call("GET", "/auth/whoami", "/auth/whoami")

    # admin
    @staticmethod
    def admin_config() -> Call[JSON]:
        return Call("GET", "/admin/config", "/admin/config")

    @staticmethod
    def update_admin_config(patch: JSON) -> Call[JSON]:
        return Call("PUT", "/admin/config", "/admin/config", json=patch)

    @staticmethod
    def revert_admin_config(to: str | int = "previous") -> Call[JSON]:
        """``to``: ``previous``, ``safe_default`` or a version number."""
        return Call("POST", "/admin/config/revert", "/admin/config/revert", json={"to": to})

    @staticmethod
    def admin_config_history(limit: int | None = None, before: int | None = None) -> Call[JSON]:
        return Call(
            "GET",
            "/admin/config/versions",
            "/admin/config/versions",
            params=_params(limit=limit, before=before),
        )

    @staticmethod
    def audit(limit: int | None = None, before: int | None = None) -> Call[JSON]:
        return Call("GET", "/admin/audit", "/admin/audit", params=_params(limit=limit, before=before))

    # jobs
    @staticmethod
    def submit_job(document: JSON | bytes, idempotency_key: str | None = None) -> Call[JSON]:
        """``document``: a signed JobSpec, or the exact bytes of one (a file as signed).

        Bytes go out verbatim as ``application/json``, so the runner's ``spec_hash`` (SHA-256 of the body
        it received) is the SHA-256 of the file; a dict is serialised by the client, which changes them.
        """
        if isinstance(document, bytes):
            headers = {"Content-Type": "application/json", **(_idem(idempotency_key) or {})}
            return Call("POST", "/api/v1/jobs", "/api/v1/jobs", content=document, headers=headers)
        return Call("POST", "/api/v1/jobs", "/api/v1/jobs", json=document, headers=_idem(idempotency_key))

    @staticmethod
    def job(job_id: str, include_executions: bool = False) -> Call[JSON]:
        return Call(
            "GET",
            "/api/v1/jobs/{id}",
            f"/api/v1/jobs/{_seg(job_id)}",
            params={"include": "executions"} if include_executions else None,
        )

    @staticmethod
    def jobs(limit: int | None = None, cursor: str | None = None, status: str | None = None) -> Call[JSON]:
        return Call(
            "GET", "/api/v1/jobs", "/api/v1/jobs", params=_params(limit=limit, cursor=cursor, status=status)
        )

    @staticmethod
    def cancel_job(job_id: str) -> Call[JSON]:
        return Call("POST", "/api/v1/jobs/{id}/cancel", f"/api/v1/jobs/{_seg(job_id)}/cancel")

    # questions, executions, receipts
    @staticmethod
    def questions() -> Call[JSON]:
        return Call("GET", "/api/v1/questions", "/api/v1/questions")

    @staticmethod
    def executions(
        limit: int | None = None,
        offset: int | None = None,
        job_id: str | None = None,
        status: str | None = None,
        region: str | None = None,
    ) -> Call[JSON]:
        return Call(
            "GET",
            "/api/v1/executions",
            "/api/v1/executions",
            params=_params(limit=limit, offset=offset, job_id=job_id, status=status, region=region),
        )

    @staticmethod
    def execution(execution_id: str) -> Call[JSON]:
        return Call("GET", "/api/v1/executions/{id}", f"/api/v1/executions/{_seg(execution_id)}")

    @staticmethod
    def receipt(execution_id: str) -> Call[JSON]:
        return Call(
            "GET", "/api/v1/executions/{id}/receipt", f"/api/v1/executions/{_seg(execution_id)}/receipt"
        )

    @staticmethod
    def runner_keys() -> Call[JSON]:
        return Call("GET", "/api/v1/keys", "/api/v1/keys")

    # transparency
    @staticmethod
    def transparency_root() -> Call[JSON]:
        return Call("GET", "/api/v1/transparency/root", "/api/v1/transparency/root")

    @staticmethod
    def inclusion_proof(index: int, size: int | None = None) -> Call[JSON]:
        return Call(
            "GET",
            "/api/v1/transparency/proof",
            "/api/v1/transparency/proof",
            params=_params(index=index, size=size),
        )

    @staticmethod
    def consistency_proof(first: int, second: int | None = None) -> Call[JSON]:
        """``second`` defaults to the latest checkpoint's size."""
        return Call(
            "GET",
            "/api/v1/transparency/consistency",
            "/api/v1/transparency/consistency",
            params=_params(first=first, second=second),
        )

    @staticmethod
    def checkpoint(size: int | None = None) -> Call[str]:
        """The latest signed checkpoint note, or the one of tree size ``size``."""
        return Call(
            "GET",
            "/api/v1/transparency/checkpoint",
            "/api/v1/transparency/checkpoint",
            params=_params(size=size),
            parse="text",
        )

    @staticmethod
    def log_entry(index: int) -> Call[JSON]:
        return Call(
            "GET", "/api/v1/transparency/entries/{index}", f"/api/v1/transparency/entries/{int(index)}"
        )

    @staticmethod
    def log_keys() -> Call[JSON]:
        return Call("GET", "/api/v1/transparency/keys", "/api/v1/transparency/keys")

    @staticmethod
    def bundle(cid: str) -> Call[httpx.Response]:
        return Call(
            "GET",
            "/api/v1/transparency/bundles/{cid}",
            f"/api/v1/transparency/bundles/{_seg(cid)}",
            parse="response",
        )

    @staticmethod
    def attest(document: JSON, idempotency_key: str | None = None) -> Call[JSON]:
        return Call(
            "POST",
            "/api/v1/transparency/attestations",
            "/api/v1/transparency/attestations",
            json=document,
            headers=_idem(idempotency_key),
        )

    # diffs
    @staticmethod
    def diffs(limit: int | None = None, offset: int | None = None) -> Call[JSON]:
        return Call("GET", "/api/v1/diffs", "/api/v1/diffs", params=_params(limit=limit, offset=offset))

    @staticmethod
    def create_diff(job_id: str) -> Call[JSON]:
        """Write a finished job's difference report now (operator; idempotent)."""
        return Call("POST", "/api/v1/diffs/{job_id}", f"/api/v1/diffs/{_seg(job_id)}")

    @staticmethod
    def diff(job_id: str) -> Call[JSON]:
        return Call("GET", "/api/v1/diffs/{job_id}", f"/api/v1/diffs/{_seg(job_id)}")

    @staticmethod
    def cross_region_diff(job_id: str) -> Call[JSON]:
        return Call(
            "GET",
            "/api/v1/executions/{job_id}/cross-region-diff",
            f"/api/v1/executions/{_seg(job_id)}/cross-region-diff",
        )

    # operations (the plan's emergency procedures)
    @staticmethod
    def pause_submissions(reason: str | None = None) -> Call[JSON]:
        return Call("POST", "/admin/ops/pause", "/admin/ops/pause", json=_params(reason=reason))

    @staticmethod
    def resume_submissions(reason: str | None = None) -> Call[JSON]:
        return Call("POST", "/admin/ops/resume", "/admin/ops/resume", json=_params(reason=reason))

    @staticmethod
    def queue_stats() -> Call[JSON]:
        return Call("GET", "/admin/ops/queues", "/admin/ops/queues")

    @staticmethod
    def dead_letters(
        region: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include_requeued: bool = False,
    ) -> Call[JSON]:
        return Call(
            "GET",
            "/admin/ops/dead-letters",
            "/admin/ops/dead-letters",
            params=_params(
                region=region,
                limit=limit,
                offset=offset,
                include_requeued="true" if include_requeued else None,
            ),
        )

    @staticmethod
    def requeue_dead_letters(ids: Sequence[int] | None = None, region: str | None = None) -> Call[JSON]:
        body: JSON = _params(region=region)
        if ids is not None:
            body["ids"] = list(ids)
        return Call("POST", "/admin/ops/dead-letters/requeue", "/admin/ops/dead-letters/requeue", json=body)

    @staticmethod
    def purge_dead_letters(ids: Sequence[int] | None = None, region: str | None = None) -> Call[JSON]:
        body: JSON = _params(region=region)
        if ids is not None:
            body["ids"] = list(ids)
        return Call("POST", "/admin/ops/dead-letters/purge", "/admin/ops/dead-letters/purge", json=body)

    @staticmethod
    def workers(include_gone: bool = False, region: str | None = None) -> Call[JSON]:
        """Live workers; ``include_gone`` adds stopped and lost ones."""
        return Call(
            "GET",
            "/admin/ops/workers",
            "/admin/ops/workers",
            params=_params(all="true" if include_gone else None, region=region),
        )

    @staticmethod
    def drain_worker(worker_id: str) -> Call[JSON]:
        return Call(
            "POST", "/admin/ops/workers/{id}/drain", f"/admin/ops/workers/{_seg(worker_id)}/drain", json={}
        )

    @staticmethod
    def stop_worker(worker_id: str) -> Call[JSON]:
        return Call(
            "POST", "/admin/ops/workers/{id}/stop", f"/admin/ops/workers/{_seg(worker_id)}/stop", json={}
        )

    @staticmethod
    def start_worker(worker_id: str) -> Call[JSON]:
        return Call(
            "POST", "/admin/ops/workers/{id}/start", f"/admin/ops/workers/{_seg(worker_id)}/start", json={}
        )

    @staticmethod
    def backup() -> Call[httpx.Response]:
        return Call("POST", "/admin/ops/backup", "/admin/ops/backup", json={}, parse="response")


ROUTES = _Routes()
"""The endpoint table; ``ROUTES.job("x")`` describes ``GET /api/v1/jobs/x``."""


# --- the clients ------------------------------------------------------------------------------------


def token_from_env(name: str) -> str:
    """The token held by environment variable ``name``; BeaconConfigError if it is unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise BeaconConfigError(f"environment variable {name} is not set (it should hold a runner token)")
    return value


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        token_env: str | None = None,
        token: str | None = None,
        label: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        log: CallLog | None = None,
    ) -> None:
        if token is not None and token_env is not None:
            raise BeaconConfigError("give either token or token_env, not both")
        self.base_url = base_url.rstrip("/")
        try:
            url = httpx.URL(self.base_url)
        except httpx.InvalidURL as exc:
            raise BeaconConfigError(f"not a runner URL: {base_url!r} ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise BeaconConfigError(f"not a runner URL: {base_url!r} (expected http(s)://host[:port])")
        self.token_env = token_env
        self._token = token_from_env(token_env) if token_env else token
        self.label = label or (token_env.lower().removesuffix("_token") if token_env else "anonymous")
        self.timeout = timeout
        self.log = log or CallLog()
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json, application/problem+json"}
        if self._token:
            self._headers["Authorization"] = f"Bearer {self._token}"
        self._headers.update(headers or {})

    @property
    def calls(self) -> list[CallRecord]:
        """Every call recorded by this client and the clients derived from it."""
        return self.log.records

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def _derive_kwargs(self, token_env: str | None, token: str | None, label: str | None) -> dict[str, Any]:
        return {
            "token_env": token_env,
            "token": token,
            "label": label,
            "timeout": self.timeout,
            "log": self.log,
        }

    def _record(
        self,
        call: Call[Any],
        url: str,
        started: float,
        elapsed: float,
        response: httpx.Response | None,
        error: str | None,
    ) -> None:
        code = error
        if response is not None and response.status_code >= 400:
            code = str(problem_of(response).get("code") or f"http_{response.status_code}")
        self.log.add(
            CallRecord(
                method=call.method,
                route=call.route,
                url=url,
                status=response.status_code if response is not None else None,
                started_at=started,
                duration_s=elapsed,
                request_id=response.headers.get("x-request-id") if response is not None else None,
                code=code,
                client=self.label,
            )
        )

    @staticmethod
    def _result(call: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400 and response.status_code not in call.ok:
            raise BeaconAPIError.from_response(response)
        if call.parse == "response":
            return response  # type: ignore[return-value]
        if call.parse == "text":
            return response.text  # type: ignore[return-value]
        if response.status_code == 204 or not response.content:
            return {}  # type: ignore[return-value]
        try:
            return response.json()  # type: ignore[no-any-return]
        except ValueError as exc:
            raise BeaconAPIError(
                call.method,
                str(response.request.url),
                response.status_code,
                {"code": "invalid_json", "detail": f"the runner answered with invalid JSON: {exc}"},
                response.headers,
            ) from None


class BeaconClient(_Base):
    """Synchronous client (notebooks, CLI). Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        *,
        token_env: str | None = None,
        token: str | None = None,
        label: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        log: CallLog | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url, token_env=token_env, token=token, label=label, timeout=timeout, headers=headers, log=log
        )
        self._transport = transport
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> BeaconClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def with_token(
        self, token_env: str | None = None, *, token: str | None = None, label: str | None = None
    ) -> BeaconClient:
        """A client for the same runner with another token (or none); it shares this client's call log."""
        return BeaconClient(
            self.base_url, transport=self._transport, **self._derive_kwargs(token_env, token, label)
        )

    def anonymous(self) -> BeaconClient:
        return self.with_token(None, label="anonymous")

    # the transport
    def request(
        self,
        method: str,
        path: str,
        *,
        route: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send any request and return the response, whatever its status (it is still recorded)."""
        extra = dict(headers or {})
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key
        call: Call[Any] = Call(method.upper(), route or path, path)
        url = self.base_url + path
        started, t0 = time.time(), time.perf_counter()
        try:
            response = self._http.request(
                method.upper(),
                path,
                params=params,
                json=json,
                content=content,
                headers=extra,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except httpx.TransportError as exc:
            self._record(call, url, started, time.perf_counter() - t0, None, type(exc).__name__)
            raise BeaconConnectionError(method.upper(), url, f"{type(exc).__name__}: {exc}") from exc
        self._record(call, url, started, time.perf_counter() - t0, response, None)
        return response

    def send(self, call: Call[T]) -> T:
        """Make ``call``; raise BeaconAPIError on an error status."""
        response = self.request(
            call.method,
            call.path,
            route=call.route,
            params=call.params,
            json=call.json,
            content=call.content,
            headers=call.headers,
        )
        return self._result(call, response)

    # health and identity
    def health(self) -> JSON:
        return self.send(ROUTES.health())

    def metrics(self) -> str:
        return self.send(ROUTES.metrics())

    def openapi(self) -> JSON:
        return self.send(ROUTES.openapi())

    def ready(self) -> httpx.Response:
        """``/health/ready``: 200 when ready, 503 (returned, not raised) when a dependency is down."""
        return self.send(ROUTES.ready())

    def live(self) -> JSON:
        return self.send(ROUTES.live())

    def whoami(self) -> JSON:
        return self.send(ROUTES.whoami())

    # admin
    def admin_config(self) -> JSON:
        return self.send(ROUTES.admin_config())

    def update_admin_config(self, patch: JSON) -> JSON:
        return self.send(ROUTES.update_admin_config(patch))

    def revert_admin_config(self, to: str | int = "previous") -> JSON:
        return self.send(ROUTES.revert_admin_config(to))

    def admin_config_history(self, limit: int | None = None, before: int | None = None) -> JSON:
        return self.send(ROUTES.admin_config_history(limit, before))

    def audit(self, limit: int | None = None, before: int | None = None) -> JSON:
        return self.send(ROUTES.audit(limit, before))

    # jobs
    def submit_job(self, document: JSON | bytes, idempotency_key: str | None = None) -> JSON:
        """Submit a signed JobSpec: a dict, or a file's bytes sent verbatim (``spec_hash`` = their SHA-256)."""
        return self.send(ROUTES.submit_job(document, idempotency_key))

    def job(self, job_id: str, include_executions: bool = False) -> JSON:
        return self.send(ROUTES.job(job_id, include_executions))

    def jobs(self, limit: int | None = None, cursor: str | None = None, status: str | None = None) -> JSON:
        return self.send(ROUTES.jobs(limit, cursor, status))

    def cancel_job(self, job_id: str) -> JSON:
        return self.send(ROUTES.cancel_job(job_id))

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float = 120.0,
        interval: float = 0.25,
        include_executions: bool = True,
        on_poll: Callable[[JSON], None] | None = None,
    ) -> JSON:
        """Poll the job until it is terminal; TimeoutError (with the last state) if it is not in time."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id, include_executions=include_executions)
            if on_poll is not None:
                on_poll(job)
            if job.get("status") in TERMINAL_JOB_STATES:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.get('status')!r} after {timeout:.0f}s")
            time.sleep(interval)

    # questions, executions, receipts
    # the common tables as pandas DataFrames (beacon.frames; pandas is imported on first use)
    def jobs_frame(self, limit: int = 100, status: str | None = None) -> pd.DataFrame:
        """The most recent jobs, one row each."""
        from beacon.frames import jobs_frame

        return jobs_frame(self.jobs(limit=limit, status=status).get("jobs", []))

    def executions_frame(self, job_ids: Sequence[str]) -> pd.DataFrame:
        """The executions of ``job_ids``: region, model, status, latency_s, queue_s, backend …"""
        from beacon.frames import executions_frame

        return executions_frame(self.job(job_id, include_executions=True) for job_id in job_ids)

    def receipts_frame(self, job_ids: Sequence[str]) -> pd.DataFrame:
        """The signed receipts of the executions of ``job_ids`` that have one (not verified here:
        :mod:`beacon.harness.verification` does that)."""
        from beacon.frames import receipts_frame

        receipts = [
            self.receipt(execution["id"])
            for job_id in job_ids
            for execution in self.job(job_id, include_executions=True).get("executions") or []
            if execution.get("receipt_id")
        ]
        return receipts_frame(receipts)

    def diffs_frame(self, limit: int = 100) -> pd.DataFrame:
        """The difference reports the runner lists, newest first."""
        from beacon.frames import diffs_frame

        return diffs_frame(self.diffs(limit=limit).get("diffs", []))

    def questions(self) -> JSON:
        return self.send(ROUTES.questions())

    def executions(
        self,
        limit: int | None = None,
        offset: int | None = None,
        job_id: str | None = None,
        status: str | None = None,
        region: str | None = None,
    ) -> JSON:
        return self.send(ROUTES.executions(limit, offset, job_id, status, region))

    def execution(self, execution_id: str) -> JSON:
        return self.send(ROUTES.execution(execution_id))

    def receipt(self, execution_id: str) -> JSON:
        return self.send(ROUTES.receipt(execution_id))

    def runner_keys(self) -> JSON:
        return self.send(ROUTES.runner_keys())

    # transparency
    def transparency_root(self) -> JSON:
        return self.send(ROUTES.transparency_root())

    def inclusion_proof(self, index: int, size: int | None = None) -> JSON:
        return self.send(ROUTES.inclusion_proof(index, size))

    def consistency_proof(self, first: int, second: int | None = None) -> JSON:
        return self.send(ROUTES.consistency_proof(first, second))

    def checkpoint(self, size: int | None = None) -> str:
        return self.send(ROUTES.checkpoint(size))

    def log_entry(self, index: int) -> JSON:
        return self.send(ROUTES.log_entry(index))

    def log_keys(self) -> JSON:
        return self.send(ROUTES.log_keys())

    def bundle(self, cid: str) -> bytes:
        """The bundle's bytes, exactly as served (so its CID can be recomputed)."""
        return self.send(ROUTES.bundle(cid)).content

    def attest(self, document: JSON, idempotency_key: str | None = None) -> JSON:
        return self.send(ROUTES.attest(document, idempotency_key))

    # diffs
    def diffs(self, limit: int | None = None, offset: int | None = None) -> JSON:
        return self.send(ROUTES.diffs(limit, offset))

    def create_diff(self, job_id: str) -> JSON:
        return self.send(ROUTES.create_diff(job_id))

    def diff(self, job_id: str) -> JSON:
        return self.send(ROUTES.diff(job_id))

    def cross_region_diff(self, job_id: str) -> JSON:
        return self.send(ROUTES.cross_region_diff(job_id))

    # operations
    def pause_submissions(self, reason: str | None = None) -> JSON:
        return self.send(ROUTES.pause_submissions(reason))

    def resume_submissions(self, reason: str | None = None) -> JSON:
        return self.send(ROUTES.resume_submissions(reason))

    def queue_stats(self) -> JSON:
        return self.send(ROUTES.queue_stats())

    def dead_letters(
        self,
        region: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include_requeued: bool = False,
    ) -> JSON:
        return self.send(ROUTES.dead_letters(region, limit, offset, include_requeued))

    def requeue_dead_letters(self, ids: Sequence[int] | None = None, region: str | None = None) -> JSON:
        return self.send(ROUTES.requeue_dead_letters(ids, region))

    def purge_dead_letters(self, ids: Sequence[int] | None = None, region: str | None = None) -> JSON:
        return self.send(ROUTES.purge_dead_letters(ids, region))

    def workers(self, include_gone: bool = False, region: str | None = None) -> JSON:
        return self.send(ROUTES.workers(include_gone, region))

    def drain_worker(self, worker_id: str) -> JSON:
        return self.send(ROUTES.drain_worker(worker_id))

    def stop_worker(self, worker_id: str) -> JSON:
        return self.send(ROUTES.stop_worker(worker_id))

    def start_worker(self, worker_id: str) -> JSON:
        return self.send(ROUTES.start_worker(worker_id))

    def backup(self) -> bytes:
        return self.send(ROUTES.backup()).content


__all__ = [
    "JSON",
    "ROUTES",
    "TERMINAL_JOB_STATES",
    "BeaconAPIError",
    "BeaconClient",
    "BeaconConfigError",
    "BeaconConnectionError",
    "BeaconError",
    "Call",
    "CallLog",
    "CallRecord",
    "problem_of",
    "token_from_env",
]
