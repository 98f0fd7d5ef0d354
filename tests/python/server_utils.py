"""Live `pagedllm serve` processes on loopback for the server tests.

``shared_server(*flags)`` starts one server per distinct flag list and reuses it for the rest
of the session (every test module asks for the same one); ``ServerProcess`` can also be used
directly for a server a test stops itself (SIGTERM tests).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

NUM_THREADS = 2
START_TIMEOUT_S = 120.0
_SHARED: dict[tuple[str, ...], "ServerProcess"] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m pagedllm serve`` with ``flags`` on a free loopback port."""

    def __init__(self, *flags: str, api_key: str | None = None) -> None:
        self.port = free_port()
        self.api_key = api_key
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "pagedllm", "serve", "--port", str(self.port),
                "--num-threads", str(NUM_THREADS), "--disable-log-stats",
                "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning", *flags]
        if api_key:
            args += ["--api-key", api_key]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        env.pop("PAGEDLLM_API_KEY", None)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {START_TIMEOUT_S} s:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status (kills after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def metrics(self) -> dict[str, float]:
        """``{"name{labels}": value}`` of the /metrics samples, labels dropped where only
        model_name is set."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", headers=self.headers(), timeout=10).text
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k != "model_name"}
                key = sample.name + (str(sorted(labels.items())) if labels else "")
                values[key] = sample.value
        return values

    def wait_idle(self, timeout: float = 10.0) -> dict[str, float]:
        """Polls /metrics until nothing runs or waits and every KV block is free."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            idle = (m["pagedllm:num_requests_running"] == 0
                    and m["pagedllm:num_requests_waiting"] == 0
                    and m["pagedllm:num_kv_blocks_used"] == 0)
            if idle or time.monotonic() > deadline:
                return m
            time.sleep(0.05)


def shared_server(*flags: str, api_key: str | None = None) -> ServerProcess:
    key = (*flags, f"key={api_key}")
    server = _SHARED.get(key)
    if server is None or server.proc.poll() is not None:
        server = _SHARED[key] = ServerProcess(*flags, api_key=api_key)
    return server


@atexit.register
def _stop_all() -> None:
    for server in _SHARED.values():
        server.stop(timeout=10)
