"""The Ollama backend: the official ``ollama`` client against the one host configured for a region.

Per execution: ``/api/version`` and ``/api/tags`` (concurrently) pin the server version and the model's
digest just before the call — tags move, digests do not — then ``/api/chat`` runs with
``options{temperature, seed, num_predict, top_p}``. ``num_predict`` is Ollama's length limit: the original
runner sent ``max_tokens``, which Ollama ignores, so generation ran unbounded (reference §9, #40).

A region has exactly one host. When it cannot be reached the execution fails (transiently) for that
region; there is no fallback to another region's host (reference §9, #37).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import ollama

from beacon.executors.base import (
    ExecutionRequest,
    ExecutionResult,
    ExecutorError,
    PermanentExecutorError,
    TransientExecutorError,
    admit_request,
)

log = logging.getLogger("beacon.executors.ollama")

NS = 1e9
DEFAULT_PORT = 11434

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def ollama_options(request: ExecutionRequest) -> dict[str, Any]:
    """Decoding options in Ollama's vocabulary (``num_predict``, not ``max_tokens``)."""
    return {
        "temperature": request.options.temperature,
        "seed": request.options.seed,
        "num_predict": request.options.max_tokens,
        "top_p": request.options.top_p,
    }


def ollama_url(host: str) -> str:
    """``OLLAMA_HOST`` as the URL Ollama's own client makes of it: without a scheme, ``http`` and port
    11434 (``gpu-box`` → ``http://gpu-box:11434``, ``:8080`` → ``http://127.0.0.1:8080``); a URL keeps its
    scheme and port. A listen address (``0.0.0.0``, ``[::]``, how a GPU host often sets the variable for
    its server) is turned into the loopback address a client on that host reaches it at.
    """
    text = host.strip().rstrip("/")
    if "://" in text:
        scheme, rest = text.split("://", 1)
        hostport, slash, path = rest.partition("/")
        port = urlsplit(f"{scheme}://{hostport}").port
    else:
        scheme, (hostport, slash, path) = "http", text.partition("/")
        port = urlsplit("http://" + hostport).port or DEFAULT_PORT
    userinfo, at, _ = hostport.rpartition(
        "@"
    )  # credentials stay: the client needs them (receipts use public_host)
    name = urlsplit(f"{scheme}://{hostport}").hostname or "127.0.0.1"
    name = _LOOPBACK_FOR.get(name, name)
    netloc = f"[{name}]" if ":" in name else name
    return f"{scheme}://{userinfo}{at}{netloc}{f':{port}' if port else ''}{slash}{path}"


_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - listen addresses, not ones we bind


def public_host(host: str) -> str:
    """The host URL without credentials (it goes into receipts)."""
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def full_tag(name: str) -> str:
    """An Ollama model name with its tag: none means ``:latest`` (a registry's ``host:port/`` is not one)."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def same_tag(listed: str, tag: str) -> bool:
    """Whether two Ollama names are one model (``llama3`` is ``llama3:latest``)."""
    return full_tag(listed) == full_tag(tag)


def classify_response_error(exc: ollama.ResponseError, *, tag: str) -> ExecutorError:
    """Map an Ollama HTTP error to a transient or permanent executor error with a stable code."""
    status = exc.status_code
    message = str(exc.error)
    details = {"status": status, "error": message}
    if "loading" in message.lower():
        return TransientExecutorError("ollama_model_loading", message, details=details)
    if status == 404:
        return PermanentExecutorError(
            "model_not_found", f"the Ollama host has no model {tag!r}: {message}", details=details
        )
    if status in TRANSIENT_STATUSES:
        return TransientExecutorError("ollama_unavailable", f"HTTP {status}: {message}", details=details)
    if status in (401, 403):
        return PermanentExecutorError("ollama_unauthorized", f"HTTP {status}: {message}", details=details)
    if status == -1:  # an error object inside a stream, no HTTP status
        return TransientExecutorError("ollama_stream_error", message, details=details)
    if 400 <= status < 500:
        return PermanentExecutorError("ollama_bad_request", f"HTTP {status}: {message}", details=details)
    return TransientExecutorError("ollama_server_error", f"HTTP {status}: {message}", details=details)


class OllamaExecutor:
    """Runs requests on one Ollama host (the region's), through the official async client."""

    name = "ollama"

    def __init__(
        self,
        *,
        region: str,
        host: str,
        models: Mapping[str, str],
        host_source: str = "OLLAMA_HOSTS",
        keep_alive: str | None = "5m",
        connect_timeout_s: float = 5.0,
    ) -> None:
        url = ollama_url(host)  # one reading of the host for both clients and the receipts
        self.region = region
        self.host = public_host(url)
        self.host_source = host_source
        self.provider_id = f"ollama:{self.host}"
        self._models = dict(models)
        self._keep_alive = keep_alive
        timeout = httpx.Timeout(None, connect=connect_timeout_s)
        self._client = ollama.AsyncClient(host=url, timeout=timeout)
        # The official client has no call for /api/version; a plain client asks for it.
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout)
        self._details: dict[str, dict[str, Any]] = {}

    def _tag(self, model: str) -> str:
        tag = self._models.get(model)
        if tag is None:
            known = ", ".join(sorted(self._models)) or "none"
            raise PermanentExecutorError(
                "model_not_available",
                f"model {model!r} has no Ollama tag configured (OLLAMA_MODELS); known: {known}",
            )
        return tag

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        started = time.perf_counter()
        tag, remaining = admit_request(request, self.region, self._tag, serving=f" ({self.host})")
        try:
            async with asyncio.timeout(remaining):
                version, digest = await asyncio.gather(self._version(), self._digest(tag))
                details = await self._model_details(tag, digest)
                response = await self._client.chat(
                    model=tag,
                    messages=[
                        {"role": "system", "content": request.system_prompt},
                        {"role": "user", "content": request.prompt},
                    ],
                    options=ollama_options(request),
                    stream=False,
                    keep_alive=self._keep_alive,
                )
        except TimeoutError as exc:
            raise TransientExecutorError(
                "deadline_exceeded", f"no answer from {self.host} before the deadline"
            ) from exc
        except ExecutorError:
            raise
        except Exception as exc:
            raise self._classify(exc, tag) from exc
        timings = {"total": time.perf_counter() - started}
        for name in ("total", "load", "prompt_eval", "eval"):
            value = getattr(response, f"{name}_duration", None)
            if value is not None:
                timings["server_total" if name == "total" else name] = value / NS
        return ExecutionResult(
            text=response.message.content or "",
            tokens_in=response.prompt_eval_count or 0,
            tokens_out=response.eval_count or 0,
            timings=timings,
            model_digest=digest,
            backend=self.name,
            backend_version=version,
            provider_id=self.provider_id,
            served_region=self.region,
            provider_info={
                "host": self.host,
                "host_source": self.host_source,
                "tag": tag,
                "served_model": response.model,
                "digest_kind": "ollama-manifest",
                "details": details,
                "done_reason": response.done_reason,
                "keep_alive": self._keep_alive,
            },
        )

    def _classify(self, exc: Exception, tag: str) -> ExecutorError:
        if isinstance(exc, ollama.ResponseError):
            return classify_response_error(exc, tag=tag)
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return TransientExecutorError(
                "ollama_unreachable", f"cannot connect to the Ollama host of {self.region} at {self.host}"
            )
        if isinstance(exc, httpx.TimeoutException):
            return TransientExecutorError("ollama_timeout", f"{self.host} timed out: {type(exc).__name__}")
        if isinstance(exc, httpx.TransportError):
            return TransientExecutorError(
                "ollama_connection_lost", f"connection to {self.host} failed: {type(exc).__name__}: {exc}"
            )
        if isinstance(exc, ValueError):  # a body that is not the JSON Ollama sends
            return TransientExecutorError(
                "ollama_bad_response", f"{self.host} sent an unreadable answer: {exc}"
            )
        return TransientExecutorError("ollama_error", f"{type(exc).__name__}: {exc}")

    async def _version(self) -> str:
        response = await self._http.get("/api/version")
        if response.status_code >= 400:
            raise ollama.ResponseError(response.text, response.status_code)
        return str(response.json()["version"])

    async def _digest(self, tag: str) -> str:
        listed = await self._client.list()
        for entry in listed.models:
            if entry.model and same_tag(entry.model, tag) and entry.digest:
                digest = entry.digest
                return digest if digest.startswith("sha256:") else "sha256:" + digest
        raise PermanentExecutorError(
            "model_not_found", f"the Ollama host {self.host} has no model {tag!r} (pull it there first)"
        )

    async def _model_details(self, tag: str, digest: str) -> dict[str, Any]:
        cached = self._details.get(digest)
        if cached is None:
            shown = await self._client.show(tag)
            cached = shown.details.model_dump(exclude_none=True) if shown.details else {}
            if shown.parameters:
                cached["parameters"] = shown.parameters
            self._details[digest] = cached
        return dict(cached)

    async def status(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "backend": self.name,
            "region": self.region,
            "host": self.host,
            "host_source": self.host_source,
            "provider_id": self.provider_id,
        }
        try:
            version = await self._version()
            listed = await self._client.list()
            running = await self._client.ps()
        except Exception as exc:
            error = exc if isinstance(exc, ExecutorError) else self._classify(exc, "")
            return {**facts, "ready": False, "reachable": False, "error": error.code, "detail": error.message}
        available = {entry.model: entry.digest for entry in listed.models if entry.model}
        models = {
            model: {
                "tag": tag,
                "digest": next((d for name, d in available.items() if same_tag(name, tag)), None),
            }
            for model, tag in sorted(self._models.items())
        }
        return {
            **facts,
            "ready": any(entry["digest"] for entry in models.values()),
            "reachable": True,
            "backend_version": version,
            "models": models,
            "loaded": [entry.model for entry in running.models],
            # bytes of each loaded model in GPU memory (0: it runs on the CPU)
            "loaded_vram": {entry.model: entry.size_vram for entry in running.models if entry.model},
        }

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
        await self._http.aclose()
