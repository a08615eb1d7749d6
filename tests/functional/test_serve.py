"""`llmlab serve` over plain HTTP and websockets (no browser): the token gate, and app processes that
start only for the token and end with their tab or the server.

One server for the module (`-m serve` runs these with the browser tests); each test counts the
server's app processes itself.
"""

from __future__ import annotations

import asyncio

import aiohttp
import psutil
import pytest
from served import Served, _statuses, status_of, wait_for, websocket_status

pytestmark = [pytest.mark.serve, pytest.mark.serial, pytest.mark.xdist_group("serve")]

WRONG = "wrong-token-0123456789abcdef"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("serve"))
    yield server
    server.stop()


def test_without_the_right_token_every_route_is_403_and_no_app_starts(served):
    ws = served.base.replace("http:", "ws:") + "/ws"
    assert served.app_processes() == []
    assert status_of(served.base + "/") == 403
    assert status_of(f"{served.base}/?token={WRONG}") == 403
    assert status_of(f"{served.base}/?token={served.token[:-1]}") == 403  # all but the last character
    assert status_of(served.base + "/static/js/textual.js") == 403
    assert status_of(served.base + "/", Cookie=f"{served.cookie}={WRONG}") == 403
    assert asyncio.run(websocket_status(ws)) == 403
    assert asyncio.run(websocket_status(f"{ws}?token={WRONG}")) == 403
    # The right cookie, but the websocket is opened by a page of another site: refused as well.
    assert asyncio.run(websocket_status(ws, Cookie=f"{served.cookie}={served.token}", Origin="http://evil.example")) == 403
    assert served.app_processes() == []
    assert served.token not in served.log() and WRONG not in served.log()


def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_address_bar(served):
    async def first_visit():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{served.url}&fontsize=14", allow_redirects=False) as response:
                return response.status, response.headers["Location"], response.cookies[served.cookie].value

    status, location, cookie = asyncio.run(first_visit())
    assert (status, location, cookie) == (302, "/?fontsize=14", served.token)
    assert status_of(served.base + "/", Cookie=f"{served.cookie}={served.token}") == 200
    assert status_of(served.base + "/static/js/textual.js", Cookie=f"{served.cookie}={served.token}") == 200
    assert served.app_processes() == []  # a page alone starts nothing; its websocket does


def test_twenty_concurrent_wrong_token_loads_leave_no_process(served):
    before = served.app_processes()
    ws = served.base.replace("http:", "ws:") + "/ws"

    async def abuse():
        pages = _statuses([(f"{served.base}/?token={WRONG}{n}", {}) for n in range(20)])
        sockets = asyncio.gather(*(websocket_status(f"{ws}?token={WRONG}{n}") for n in range(20)))
        return await asyncio.gather(pages, sockets)

    pages, sockets = asyncio.run(abuse())
    assert pages == [403] * 20 and sockets == [403] * 20
    assert before == [] and served.app_processes() == []
    assert served.log().count("refused") >= 40


def test_a_websocket_with_the_token_gets_an_app_that_ends_with_it(served):
    ws = served.base.replace("http:", "ws:") + "/ws?width=100&height=30"

    async def one_tab():
        async with aiohttp.ClientSession(cookies={served.cookie: served.token}) as session:
            async with session.ws_connect(ws) as socket:
                first = await asyncio.wait_for(socket.receive(), 60)  # the app's first screen
                return first.type, await asyncio.to_thread(served.wait_for_apps, 1)

    kind, apps = asyncio.run(one_tab())
    assert kind == aiohttp.WSMsgType.BINARY
    assert len(apps) == 1
    served.wait_for_apps(0, timeout=20)
    assert not apps[0].is_running()


def test_stopping_the_server_ends_every_open_tab_s_app(tmp_path):
    server = Served(tmp_path)
    ws = server.base.replace("http:", "ws:") + "/ws"
    try:
        async def tab_open_while_the_server_stops():
            async with aiohttp.ClientSession(cookies={server.cookie: server.token}) as session:
                async with session.ws_connect(ws) as socket:
                    await asyncio.wait_for(socket.receive(), 60)
                    apps = await asyncio.to_thread(server.wait_for_apps, 1)
                    code = await asyncio.to_thread(server.stop)
                    return apps, code

        apps, code = asyncio.run(tab_open_while_the_server_stops())
    finally:
        server.stop()
    assert code == 0, server.log()
    assert not apps[0].is_running()
    assert "Traceback" not in server.log()


def test_an_app_dies_with_a_killed_server(tmp_path):
    # SIGKILL leaves the server no chance to end its tabs; their apps go with it all the same.
    server = Served(tmp_path)
    ws = server.base.replace("http:", "ws:") + "/ws"
    apps: list[psutil.Process] = []

    async def tab_open_while_the_server_is_killed():
        async with aiohttp.ClientSession(cookies={server.cookie: server.token}) as session:
            async with session.ws_connect(ws) as socket:
                await asyncio.wait_for(socket.receive(), 60)
                apps.extend(await asyncio.to_thread(server.wait_for_apps, 1))
                server.process.kill()
                server.process.wait()

    try:
        asyncio.run(tab_open_while_the_server_is_killed())
        assert len(apps) == 1
        wait_for(lambda: not apps[0].is_running() or apps[0].status() == psutil.STATUS_ZOMBIE, 10,
                 "the app to die with its server")
    finally:
        server.stop()
        for app in apps:  # a failed test leaves no orphan behind
            if app.is_running():
                app.kill()
