"""A real `llmlab serve` in its own process on a free loopback port, for the serve tests.

The server runs exactly as a user starts it (`python -m core serve`), prints its banner to a
file (the tests read the generated token from it, as a user reads it from the terminal) and logs
to another. The app processes it spawns are its direct children (`exec` in the tab command), and it
spawns nothing else, so counting them is counting its children.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

TOKEN_IN_BANNER = re.compile(r"open:\s+(http://\S+?)/\?token=(\S+)")
COOKIE = "llmlab-serve-{port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    """Poll `predicate()` until it returns something truthy; fail after `timeout` seconds saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


class Served:
    """`llmlab serve --port <free> --runs <runs>`, started and read like a user would."""

    def __init__(self, folder: Path, *extra: str) -> None:
        self.runs = folder / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.banner_path, self.log_path = folder / "banner.txt", folder / "server.log"
        with open(self.banner_path, "wb") as out, open(self.log_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "core", "serve", "--port", str(self.port), "--runs", str(self.runs), *extra],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1", "LLMLAB_CACHE_DIR": str(folder / "cache")})
        match = wait_for(self._banner_match, 60, "the server's banner")
        self.base, self.token = match.group(1), match.group(2)
        self.cookie = COOKIE.format(port=self.port)

    def _banner_match(self):
        if self.process.poll() is not None:
            raise AssertionError(f"llmlab serve exited with {self.process.returncode}: {self.log_path.read_text()}")
        return TOKEN_IN_BANNER.search(self.banner_path.read_text())

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text()

    def app_processes(self) -> list[psutil.Process]:
        """The server's children: it starts nothing but one app process per open tab (zombies count too)."""
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def wait_for_apps(self, count: int, timeout: float = 30) -> list[psutil.Process]:
        wait_for(lambda: len(self.app_processes()) == count, timeout,
                 f"{count} app process(es); there are {len(self.app_processes())}")
        return self.app_processes()

    def stop(self, timeout: float = 30) -> int:
        """Ctrl+C, as a user stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def status_of(url: str, **headers: str) -> int:
    """The HTTP status of a GET, redirects not followed."""
    return asyncio.run(_statuses([(url, headers)]))[0]


async def _statuses(requests: list[tuple[str, dict]]) -> list[int]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async def one(url, headers):
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                return response.status

        return await asyncio.gather(*(one(url, headers) for url, headers in requests))


async def websocket_status(url: str, **headers: str) -> int:
    """101 when the websocket opened (it is closed again at once), else the handshake's status."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
