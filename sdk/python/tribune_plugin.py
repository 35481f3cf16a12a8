"""Tribune plugin SDK for Python (componentize-py).

Write a module (``app.py``) with a class named after the exported interface:

    from tribune_plugin import HealthCheck, passing, warning

    class Check(HealthCheck):
        def run(self, request, config):
            return passing(f"hello from {request.check_id}")

and build it with ``sdk/python/build.sh APP_DIR OUT.wasm`` (see sdk/README.md).

``run`` receives the request and the check's ``wasm.config`` already decoded. Any
exception becomes a critical result whose output names it, so an operator sees why;
a refused capability raises ``HostError`` with the host's sentence.
"""

import json

from componentize_py_types import Err
from wit_world.imports import clock, config as _config, http as _http, kv as _kv, log as _log
from wit_world.imports import tcp as _tcp, types

SDK_VERSION = "0.1.0"

CheckStatus = types.CheckStatus
CheckResult = types.CheckResult


def passing(output: str) -> types.CheckResult:
    return types.CheckResult(status=types.CheckStatus.PASSING, output=output)


def warning(output: str) -> types.CheckResult:
    return types.CheckResult(status=types.CheckStatus.WARNING, output=output)


def critical(output: str) -> types.CheckResult:
    return types.CheckResult(status=types.CheckStatus.CRITICAL, output=output)


class HostError(Exception):
    """A capability call failed: denied, timeout, failed or invalid (``kind``)."""

    def __init__(self, err):
        self.kind = type(err).__name__.replace("HostError_", "").lower()
        self.message = getattr(err, "value", str(err))
        super().__init__(f"{self.kind}: {self.message}")


def _unwrap(call):
    try:
        return call()
    except Err as e:
        raise HostError(e.value) from None


def log(message: str, level: str = "info") -> None:
    """One line in the agent's log (needs ``log = true`` in plugin.toml)."""
    _log.log(getattr(types.Level, level.upper()), message)


def plugin_config():
    """The plugin-wide configuration (``plugins[].config``), decoded; ``{}`` if none."""
    value = json.loads(_config.plugin_config())
    return {} if value is None else value


def remaining_ms() -> int:
    """Milliseconds left before the agent interrupts this call."""
    return clock.remaining_ms()


def http_get(url: str, headers=None, timeout_ms: int = 0):
    """GET ``url`` (capability ``http``); returns ``(status, headers, body_bytes)``."""
    req = _http.Request(
        method="GET",
        url=url,
        headers=list((headers or {}).items()),
        body=b"",
        timeout_ms=timeout_ms,
    )
    resp = _unwrap(lambda: _http.fetch(req))
    return resp.status, dict(resp.headers), bytes(resp.body)


def tcp_exchange(address: str, send: bytes = b"", until: bytes = b"", max_bytes: int = 0,
                 timeout_ms: int = 0) -> bytes:
    """One TCP exchange (capability ``tcp``)."""
    ex = _tcp.Exchange(address=address, send=send, read_until=until, max_bytes=max_bytes,
                       timeout_ms=timeout_ms)
    return bytes(_unwrap(lambda: _tcp.request(ex)))


def kv_get(key: str):
    """A KV value (capability ``kv-read``), or None."""
    v = _unwrap(lambda: _kv.get(key))
    return None if v is None else bytes(v)


class HealthCheck:
    """Base class for health checks: implement ``run(self, request, config)``."""

    def run(self, request, config):
        return critical("run() is not implemented")

    def check(self, request: types.CheckRequest) -> types.CheckResult:
        try:
            config = json.loads(request.config) if request.config else {}
            result = self.run(request, config)
            if isinstance(result, tuple):
                status, output = result
                return types.CheckResult(status=status, output=str(output))
            return result
        except Exception as e:  # every failure is an answer, never a trap
            return critical(f"{type(e).__name__}: {e}")
