"""`llmlab serve` without a server: its options' bad input, the token policy, the gate's decisions,
the banner and the per-tab command. (tests/functional/test_serve*.py drive a real server.)"""

from __future__ import annotations

import os
import shlex
import socket
import sys

import pytest
from aiohttp.test_utils import make_mocked_request

from core.cli import main
from tui import serve_access
from tui.serve import app_command, banner
from tui.serve_access import TokenGate, choose_token, is_loopback

TOKEN = "s3cret-token-0123456789"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmlab: error: "), err
    return lines[0]


@pytest.mark.parametrize("args, says", [
    (["--host", "0.0.0.0", "--no-token"], "--host 0.0.0.0 is reachable from other machines, so it needs a token"),
    (["--host", "192.168.1.7", "--no-token"], "needs a token"),
    (["--token", "short"], "use at least 16"),
    (["--token", TOKEN, "--no-token"], "contradict"),
    (["--token", "has spaces in it, sixteen+"], "printable ASCII without spaces"),
    (["--port", "0"], "Invalid value for '--port'"),
    (["--port", "70000"], "Invalid value for '--port'"),
    (["--runs", "/nonexistent/llmlab-runs"], "does not exist; create it (mkdir -p /nonexistent/llmlab-runs)"),
    (["--runs", sys.executable], "is not a folder"),
    (["--host", "192.0.2.1", "--port", "8999"], "cannot listen on 192.0.2.1:8999"),
])
def test_bad_options_get_one_line_and_exit_2(args, says, capsys, tmp_path):
    runs = [] if "--runs" in args else ["--runs", str(tmp_path)]
    assert main(["serve", *runs, *args]) == 2
    assert says in one_error_line(capsys)


def test_a_port_in_use_gets_one_line(capsys, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--runs", str(tmp_path)]) == 2
    assert f"port {port} on 127.0.0.1 is already in use; choose another with --port" in one_error_line(capsys)


def test_an_unwritable_runs_folder_gets_one_line(capsys, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tui.serve.tempfile.TemporaryFile", refuse)  # root ignores file modes; refuse for it
    assert main(["serve", "--runs", str(tmp_path)]) == 2
    assert "is not writable (Permission denied)" in one_error_line(capsys)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LOCALHOST", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False), ("gpubox", False), ("localhost.evil.example", False),
])
def test_only_loopback_addresses_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_token_is_generated_unless_given_and_none_only_on_request():
    first, generated = choose_token("0.0.0.0", None, False)
    assert generated and len(first) >= 32 and first != choose_token("0.0.0.0", None, False)[0]
    assert choose_token("127.0.0.1", None, False)[1]  # loopback gets one too: other users of the box reach it
    assert choose_token("0.0.0.0", TOKEN, False) == (TOKEN, False)
    assert choose_token("127.0.0.1", None, True) == (None, False)


def request(path: str, **headers: str):
    headers.setdefault("Host", "127.0.0.1:8000")
    return make_mocked_request("GET", path, headers=headers)


@pytest.mark.parametrize("path, headers, allowed", [
    ("/", {}, False),
    ("/?token=wrong", {}, False),
    (f"/?token={TOKEN[:-1]}", {}, False),
    (f"/?token={TOKEN}x", {}, False),
    ("/?token=%E2%9C%93", {}, False),  # non-ASCII: refused, not a TypeError
    (f"/?token={TOKEN}", {}, True),
    ("/static/js/textual.js", {"Cookie": f"llmlab-serve-8000={TOKEN}"}, True),
    ("/", {"Cookie": f"llmlab-serve-8001={TOKEN}"}, False),  # another server's cookie
    ("/ws", {"Cookie": f"llmlab-serve-8000={TOKEN}", "Upgrade": "websocket", "Origin": "http://127.0.0.1:8000"}, True),
    ("/ws", {"Cookie": f"llmlab-serve-8000={TOKEN}", "Upgrade": "websocket", "Origin": "http://evil.example"}, False),
])
def test_the_gate_lets_through_only_the_token_from_this_origin(path, headers, allowed):
    gate = TokenGate(TOKEN, 8000)
    assert gate.allows(request(path, **headers))[0] is allowed


def test_the_gate_compares_in_constant_time(monkeypatch):
    compared = []

    def spy(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(serve_access.hmac, "compare_digest", spy)
    gate = TokenGate(TOKEN, 8000)
    assert not gate.allows(request("/?token=nope"))[0]
    assert gate.allows(request(f"/?token={TOKEN}"))[0]
    assert compared == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize("host, allowed", [("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True),
                                           ("evil.example:8000", False)])
def test_without_a_token_only_this_machine_s_names_pass(host, allowed):
    # A page whose domain is rebound to 127.0.0.1 sends its own name as Host.
    gate = TokenGate(None, 8000)
    assert gate.allows(request("/", Host=host))[0] is allowed


def test_the_banner_prints_a_generated_token_once_and_a_given_one_never(tmp_path):
    text = banner("127.0.0.1", 8123, tmp_path, "generated-token-abcdefgh", True)
    assert text.count("generated-token-abcdefgh") == 1
    assert "http://127.0.0.1:8123/?token=generated-token-abcdefgh" in text
    assert "ssh -N -L 8123:127.0.0.1:8123 " in text and "warning" not in text
    given = banner("0.0.0.0", 8123, tmp_path, TOKEN, False)
    assert TOKEN not in given and "?token=<your token>" in given
    assert "plain HTTP (no TLS)" in given and "ssh -N -L 8123:127.0.0.1:8123 " in given


def test_each_tab_runs_the_app_on_the_chosen_runs_folder(tmp_path):
    runs = tmp_path / "runs with 'quotes' and $HOME"
    assert shlex.split(app_command(runs)) == ["exec", "env", f"LLMLAB_RUNS_DIR={runs}", f"LLMLAB_SERVE_PID={os.getpid()}",
                                              sys.executable, "-m", "tui.served_app"]


def test_the_token_option_reads_the_variable_its_errors_name():
    from core.cli import cli

    [option] = [p for p in cli.commands["serve"].params if p.name == "token"]
    assert option.envvar == serve_access.TOKEN_ENV == "LLMLAB_SERVE_TOKEN"
