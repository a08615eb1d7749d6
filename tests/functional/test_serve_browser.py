"""`llmlab serve` in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The page draws the app on a canvas, so what it shows is read from what it was sent: every
websocket frame the page received, escape codes removed. The screenshot of the demo eval is kept
in tests/artifacts/ for CI to keep.

Skips, saying why, only when Chromium or Playwright is missing (.ci/run installs Chromium with apt).
`-m browser` runs just these.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from served import Served, wait_for

from core.runs import RESULTS, SUMMARY

pytestmark = [pytest.mark.serve, pytest.mark.browser, pytest.mark.serial, pytest.mark.xdist_group("serve")]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TAB_TITLES = ["1 Hardware", "2 Pretrain", "3 Evaluate", "4 Fine-tune", "5 Runs"]
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
SESSIONS = 5


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    playwright = sync_playwright().start()
    # Debian's Chromium, never Playwright's own download (there is no internet here).
    chromium = playwright.chromium.launch(executable_path=executable, headless=True)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("serve-browser"))
    yield server
    server.stop()


@pytest.fixture
def context(browser, served):
    """A browser profile of the test's own; closing it closes its tabs, and their apps must end."""
    profile = browser.new_context(viewport={"width": 1280, "height": 800})
    yield profile
    profile.close()
    served.wait_for_apps(0, timeout=30)


class Screen:
    """One browser tab on the served app, and the text of everything the app sent it."""

    def __init__(self, page) -> None:
        self.page = page
        self.received: list[bytes] = []
        page.on("websocket", lambda socket: socket.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        self.received.append(payload.encode() if isinstance(payload, str) else payload)

    def text(self, since: int = 0) -> str:
        return ESCAPES.sub("", b"".join(self.received[since:]).decode("utf-8", "replace"))

    def wait_for_text(self, predicate, timeout: float, what: str, since: int = 0) -> None:
        # page.wait_for_timeout, not time.sleep: Playwright delivers the frames only while it runs.
        deadline = time.monotonic() + timeout
        while not predicate(self.text(since)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; the page got: {self.text(since)[-600:]!r}")
            self.page.wait_for_timeout(100)

    def load(self, url: str) -> None:
        """Start loading the page; returns once the server answered (the page goes on by itself)."""
        self.page.goto(url, wait_until="commit")

    def wait_until_drawn(self) -> None:
        self.page.wait_for_selector("body.-first-byte", timeout=90_000)  # the page script drew the app's first bytes
        self.wait_for_text(lambda text: all(title in text for title in TAB_TITLES), 90, "the tab names")

    def press(self, key: str, then: str | None = None, timeout: float = 30) -> None:
        """Press `key` in the terminal; with `then`, wait until the app answers with text containing it."""
        since = len(self.received)
        self.page.focus(".xterm-helper-textarea")
        self.page.keyboard.press(key)
        if then is not None:
            self.wait_for_text(lambda text: then in text, timeout, f"{then!r} after pressing {key!r}", since)


def test_a_page_without_the_token_gets_403_and_starts_no_app(context, served):
    page = context.new_page()
    response = page.goto(served.base + "/")
    assert response.status == 403
    assert "needs its token" in page.content()
    assert served.app_processes() == []


def test_a_demo_eval_started_in_the_browser_outlives_its_tab_and_its_table_fills(context, served):
    page = context.new_page()
    screen = Screen(page)
    screen.load(served.url)
    screen.wait_until_drawn()
    assert page.url == served.base + "/"  # the token left the address bar (it is a cookie now)
    [app] = served.wait_for_apps(1)

    screen.press("3", then="Preset")
    screen.press("d", then="bundled demo")
    screen.press("s")
    run = wait_for(lambda: next(served.runs.glob("*-eval"), None), 60, "the eval's run folder")
    # Close the tab while the job is still starting: its app ends, the job does not (its own
    # session, as after a dropped SSH link), so it completes rather than stops.
    assert not (run / SUMMARY).exists()
    page.close()
    served.wait_for_apps(0, timeout=20)
    assert not app.is_running()
    summary = wait_for(lambda: (run / SUMMARY).exists() and json.loads((run / SUMMARY).read_text()), 240,
                       "the job to finish after its tab closed")
    assert summary["status"] == "completed", (run / "job.log").read_text()[-2000:]
    assert len((run / RESULTS).read_text().splitlines()) == summary["n"] > 0

    # A new tab over the same runs folder lists the run; opening it shows its table, a row per question.
    page = context.new_page()
    screen = Screen(page)
    screen.load(served.url)
    screen.wait_until_drawn()
    since = len(screen.received)
    screen.press("5")
    # The run listed, and the footer's "Compare": the table has focus, so `o` opens its run.
    screen.wait_for_text(lambda text: run.name in text and "Compare" in text, 30, "the Runs tab with focus", since)
    screen.press("o", then="moral_scenarios", timeout=60)
    screen.wait_for_text(lambda text: text.count("moral_scenarios") >= 10 and ("✓" in text or "✗" in text), 30, "the table's rows")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-eval.png"))


def test_five_browser_sessions_each_get_an_app_and_closing_them_leaves_none(browser, served):
    assert served.app_processes() == []
    contexts = [browser.new_context(viewport={"width": 1000, "height": 600}) for _ in range(SESSIONS)]
    try:
        screens = [Screen(context.new_page()) for context in contexts]
        for screen in screens:  # all five load at once; each page goes on by itself after its answer
            screen.load(served.url)
        for screen in screens:
            screen.wait_until_drawn()
        apps = served.wait_for_apps(SESSIONS)
        assert len({app.pid for app in apps}) == SESSIONS
        for screen in screens:  # each a working app of its own: it answers its tab's keys
            screen.press("3", then="Preset")
    finally:
        for context in contexts:
            context.close()
    served.wait_for_apps(0, timeout=30)
    assert not any(app.is_running() for app in apps)
