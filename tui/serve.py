"""`llmlab serve`: the same Textual app in a browser, one app process per tab, behind a token.

textual-serve provides the page, its script and the protocol between a websocket and an app
process (`AppService`). What is ours: the gate in front of every route (tui/serve_access.py),
page URLs that work whatever name the browser used to reach the box, no access log (URLs carry
the token), and app processes that are always ended when their tab closes or the server stops.
Jobs are not app processes: the app starts them in their own sessions, so they keep running
after a tab closes, as they do after an SSH session drops.
"""

from __future__ import annotations

import asyncio
import errno
import getpass
import logging
import os
import shlex
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from core.errors import UsageError
from core.runs import RUNS_ENV, runs_root
from tui.serve_access import TOKEN_PARAM, TokenGate, choose_token, is_loopback
from tui.served_app import SERVER_PID_ENV

QUIT_SECONDS = 5.0  # a closed tab's app gets this long to quit by itself before it is terminated
KILL_SECONDS = 3.0  # after SIGTERM, before SIGKILL
COOKIE_DAYS = 30

log = logging.getLogger("llmlab.serve")


def app_command(runs: Path) -> str:
    """The shell command textual-serve runs for each tab: the app (tui/served_app.py) on `runs`.

    `exec` makes the app the server's own child (no shell in between), so ending it ends the app,
    and the app can tie its life to the server's.
    """
    variables = f"{RUNS_ENV}={shlex.quote(str(runs))} {SERVER_PID_ENV}={os.getpid()}"
    return f"exec env {variables} {shlex.quote(sys.executable)} -m tui.served_app"


def check_runs_folder(runs: Path | None) -> Path:
    """The absolute runs folder every tab's app uses; a given --runs must exist and be writable."""
    if runs is None:
        root = runs_root()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the runs folder {root} ({exc.strerror}); choose one with --runs DIR") from None
        what = f"the runs folder {root}"
    else:
        root = runs.expanduser()
        what = f"--runs {runs}"
        if not root.exists():
            raise UsageError(f"{what} does not exist; create it (mkdir -p {shlex.quote(str(root))}) or choose another folder")
        if not root.is_dir():
            raise UsageError(f"{what} is not a folder; choose a folder for the run folders")
    try:
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise UsageError(f"{what} is not writable ({exc.strerror}); choose a folder you can write to with --runs DIR") from None
    return root.resolve()


def _url_host(host: str) -> str:
    """The host as it appears in a URL: a wildcard becomes this machine's name, IPv6 gets brackets."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no name
        return "user"


def banner(host: str, port: int, runs: Path, token: str | None, generated: bool) -> str:
    """What the server prints once it listens: the URL (with a generated token), the tunnel, the caveats."""
    base = f"http://{_url_host(host)}:{port}/"
    if token is None:
        url = base
    elif generated:
        url = f"{base}?{TOKEN_PARAM}={token}"  # printed once, here, as Jupyter does
    else:
        url = f"{base}?{TOKEN_PARAM}=<your token>"  # the user knows it; keep it out of logs
    wildcard = host in ("0.0.0.0", "::", "")
    target = "127.0.0.1" if wildcard else _url_host(host)
    then = "then open the same URL on the laptop"
    if not is_loopback(host):
        then = f"then open the URL above on the laptop with localhost:{port} in place of {_url_host(host)}:{port}"
    lines = [
        f"llmlab serve: the app in a browser, one app per tab, runs in {runs}",
        f"  open:          {url}",
        f"  from a laptop: ssh -N -L {port}:{target}:{port} {_user()}@{socket.gethostname()}   {then}",
    ]
    if not is_loopback(host):
        lines.append("  warning: plain HTTP (no TLS): the token and the page cross the network unencrypted; "
                     "prefer the tunnel or a TLS reverse proxy")
    lines.append("  Ctrl+C stops the server and closes every tab; jobs keep running")
    return "\n".join(lines)


async def end_app_process(tab: AppService) -> None:
    """Ask a tab's app to quit, and make sure its process is gone (and reaped) either way."""
    process = tab._process  # textual-serve keeps the child here; nothing public exposes it
    if process is None:
        return
    try:
        await asyncio.wait_for(tab.stop(), QUIT_SECONDS)
    except (asyncio.TimeoutError, OSError, RuntimeError):
        pass
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), KILL_SECONDS)
        except asyncio.TimeoutError:
            process.kill()
    await process.wait()


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, min(int(text or ""), 1000))
    except ValueError:
        return default


class LlmlabServer(Server):
    """textual-serve's Server, with every route behind the token gate and tracked app processes."""

    def __init__(self, runs: Path, host: str, port: int, token: str | None) -> None:
        super().__init__(app_command(runs), host=host, port=port, title="llmlab")
        self.gate = TokenGate(token, port)
        self.tabs: dict[AppService, web.WebSocketResponse] = {}
        self._ending: dict[AppService, asyncio.Task] = {}

    def web_app(self) -> web.Application:
        """Every route of textual-serve's, behind the gate: the page, its websocket, downloads, static files."""
        app = web.Application(middlewares=[self.gate.middleware])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get("/ws", self.handle_websocket, name="websocket"),
            web.get("/download/{key}", self.handle_download, name="download"),
            web.static("/static", self.statics_path, name="static"),
        ])
        app.on_response_prepare.append(self._no_referrer)
        app.on_shutdown.append(self.close_all_tabs)
        return app

    async def _no_referrer(self, request: web.Request, response: web.StreamResponse) -> None:
        # The page loads a web font from elsewhere; no URL of ours goes with that request.
        response.headers["Referrer-Policy"] = "no-referrer"

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        if TOKEN_PARAM in request.query:
            # The gate has checked it: keep it as a cookie, and take it out of the address bar and history.
            rest = request.rel_url.without_query_params(TOKEN_PARAM)
            response = web.Response(status=302, headers={"Location": str(rest)})
            response.set_cookie(self.gate.cookie, request.query[TOKEN_PARAM], httponly=True, samesite="Strict",
                                path="/", max_age=COOKIE_DAYS * 86400, secure=request.secure)
            return response
        # URLs from the address the browser used (textual-serve builds them from --host, and
        # ws://0.0.0.0/ reaches nothing); wss behind a TLS reverse proxy that says so.
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        context: dict[str, Any] = {
            "font_size": _int(request.query.get("fontsize"), 16),
            "app_websocket_url": f"{'wss' if secure else 'ws'}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab: one app process for as long as its websocket stays open."""
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        tab = AppService(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                         close=websocket.close, download_manager=self.download_manager)
        self.tabs[tab] = websocket
        try:
            await tab.start(_int(request.query.get("width"), 80), _int(request.query.get("height"), 24))
            log.info("tab opened from %s: app process %d (%d open)", request.remote, tab._process.pid, len(self.tabs))
            await self._process_messages(websocket, tab)
        except Exception:
            log.exception("a tab failed")
        finally:
            # Shielded: a cancelled handler (the server stopping) must still end its app process.
            await asyncio.shield(self.end_tab(tab))
            self.tabs.pop(tab, None)
            self._ending.pop(tab, None)
            await websocket.close()
            log.info("tab closed (%d open)", len(self.tabs))
        return websocket

    def end_tab(self, tab: AppService) -> asyncio.Task:
        """End a tab's app once, however many callers ask (the tab's own handler, the server stopping)."""
        if tab not in self._ending:
            self._ending[tab] = asyncio.ensure_future(end_app_process(tab))
        return self._ending[tab]

    async def close_all_tabs(self, app: web.Application) -> None:
        tabs = list(self.tabs.items())
        await asyncio.gather(*(self.end_tab(tab) for tab, _ in tabs), return_exceptions=True)
        await asyncio.gather(*(websocket.close() for _, websocket in tabs), return_exceptions=True)

    async def run_until_stopped(self, banner_text: str) -> None:
        """Listen, print the banner, and serve until SIGINT, SIGTERM or SIGHUP; then end every tab's app."""
        runner = web.AppRunner(self.web_app(), access_log=None, shutdown_timeout=QUIT_SECONDS + KILL_SECONDS + 2)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise UsageError(_listen_error(self.host, self.port, exc)) from None
        print(banner_text, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stopping: closing %d tab(s); jobs keep running", len(self.tabs))
        await runner.cleanup()


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; choose another with --port, or stop what listens there"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port}; choose a port above 1023 with --port"
    reason = exc.strerror or str(exc)
    return f"cannot listen on {host}:{port} ({reason}); --host must be an address of this machine, e.g. 127.0.0.1"


def serve(host: str, port: int, runs: Path | None, token: str | None, no_token: bool) -> None:
    """`llmlab serve`: check the options, then serve until stopped."""
    token, generated = choose_token(host, token, no_token)
    root = check_runs_folder(runs)
    logging.basicConfig(level=logging.INFO, format="llmlab serve: %(message)s", stream=sys.stderr)
    logging.getLogger("textual-serve").setLevel(logging.WARNING)
    server = LlmlabServer(root, host, port, token)
    asyncio.run(server.run_until_stopped(banner(host, port, root, token, generated)))

