"""--report-to: the run's curves reach TensorBoard through accelerate's tracker; a tracker that cannot work is refused first."""

from __future__ import annotations

import importlib.util
import struct

import pytest

from core import DEMO_DATA_DIR
from core.cli import main
from core.runs import iter_jsonl, read_json

ZH = str(DEMO_DATA_DIR / "demo_corpus_zh.txt")


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("llmlab: error:")]


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under `folder` (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list] = {}
    for path in folder.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        i = 0
        while i + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


@pytest.mark.skipif(not importlib.util.find_spec("tensorboardX"), reason="needs tensorboardX (the dev extra has it)")
def test_tensorboard_gets_the_loss_and_eval_curves_of_the_events(tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "--data", ZH, "--rows", "600", "--eval-rows", "60", "--epochs", "2", "--tokenizer", "train",
                 "--tokenizer-vocab", "400", "--model-size", "tiny", "--block-size", "64", "--sample-tokens", "0",
                 "--log-every", "2", "--report-to", "tensorboard", "--out", str(out)]) == 0
    curves = scalars(out / "tensorboard")
    events = list(iter_jsonl(out / "events.jsonl"))
    losses = [(e["step"], e["loss"]) for e in events if e["type"] == "loss"]
    evals = [(e["step"], e["eval_loss"]) for e in events if e["type"] == "eval"]
    assert [s for s, _ in curves["loss/loss"]] == [s for s, _ in losses]
    assert [v for _, v in curves["loss/loss"]] == pytest.approx([v for _, v in losses], rel=1e-6)
    assert [v for _, v in curves["eval/eval_loss"]] == pytest.approx([v for _, v in evals], rel=1e-6)
    assert read_json(out / "config.json")["report_to"] == "tensorboard"


def test_a_tracker_that_is_not_installed_is_refused_before_a_folder_exists(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "tensorboard",
                                                                                       "tensorboardX") else real(name, *a))
    for tracker, words in (("wandb", "needs the wandb package"), ("tensorboard", "needs the tensorboard package")):
        code = main(["pretrain", "--demo", "--report-to", tracker, "--out", str(tmp_path / tracker)])
        lines = error_lines(capsys.readouterr().err)
        assert code == 2 and len(lines) == 1 and words in lines[0]
        assert not (tmp_path / tracker).exists()


def test_wandb_without_a_login_is_refused_unless_offline(monkeypatch):
    import core.trackers as trackers
    from core.errors import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else real(name, *a))
    monkeypatch.setattr(trackers, "_wandb_logged_in", lambda: False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.raises(UsageError, match="not logged in"):
        trackers.check("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    trackers.check("wandb")  # offline mode keeps the logs local: nothing to log in to
