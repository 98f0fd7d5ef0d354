"""The chat page at / in headless Chromium, driven over the DevTools protocol (a pipe, no
extra packages): a two-turn conversation streams the same text as the API, and Stop aborts
the request in the engine. Skipped when no Chromium is installed."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest
from server_utils import shared_server

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """Chromium with --remote-debugging-pipe: NUL-separated JSON messages on fds 3 and 4."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="pagedllm-chrome-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             "about:blank"],
            preexec_fn=wire_fds, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def call(self, method: str, **params: object) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 65536)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def eval(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.fixture(scope="module")
def browser():
    binary = _browser()
    if binary is None:
        pytest.skip("no Chromium found (apt-get install chromium): the chat-page test "
                    "needs a headless browser")
    tools = DevTools(binary)
    yield tools
    tools.close()


LAST = "document.querySelector('#log .msg.assistant:last-child')"


def _send(browser: DevTools, text: str) -> None:
    browser.eval(f"document.getElementById('input').value = {json.dumps(text)};"
                 "document.getElementById('send').click()")


def test_chat_page_streams_and_stops(server, browser):
    browser.open(f"{server.url}/?max_tokens=12&temperature=0")
    browser.wait_for("document.querySelectorAll('#model option').length > 0")
    assert browser.eval("document.getElementById('model').value") == "demo"
    conversation = []
    for text in ("Hello", "And again?"):
        _send(browser, text)
        browser.wait_for(f"{LAST} && {LAST}.dataset.state === 'done'")
        reply = browser.eval(f"{LAST}.querySelector('.content').textContent")
        conversation.append({"role": "user", "content": text})
        expected = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
            "messages": conversation, "max_tokens": 12, "temperature": 0,
        }).json()["choices"][0]["message"]["content"]
        assert reply == expected
        assert browser.eval(f"{LAST}.dataset.finish") == "length"
        assert "12 tokens" in browser.eval(f"{LAST}.querySelector('.meta').textContent")
        conversation.append({"role": "assistant", "content": reply})
    assert browser.eval("document.querySelectorAll('#log .msg').length") == 4

    browser.eval("document.getElementById('max-tokens').value = '2000'")
    _send(browser, "Now a long one")
    browser.wait_for(f"{LAST}.querySelector('.content').textContent.length > 3")
    assert server.metrics()["pagedllm:num_requests_running"] == 1
    browser.eval("document.getElementById('stop').click()")
    browser.wait_for(f"{LAST}.dataset.state === 'stopped'")
    m = server.wait_idle(timeout=3.0)
    assert m["pagedllm:num_requests_running"] == 0 and m["pagedllm:num_kv_blocks_used"] == 0
    assert browser.eval("document.getElementById('status').textContent") == ""
