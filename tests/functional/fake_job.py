"""A stand-in for `llmlab pretrain|eval` that writes the engine's file contract, fast and offline.

    python fake_job.py [--steps N] [--delay S] [--fail] [--forever] pretrain|eval [options...] --out DIR

It writes config.json, events.jsonl (start, phase, loss/eval or progress, log, end), results.jsonl
for eval, summary.json and report.md. SIGINT makes it finish the current step, write status
`stopped` and exit 130, as the engine does. `--forever` streams until interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

stop = False


def _interrupted(signum, frame) -> None:
    global stop
    stop = True


class Events:
    def __init__(self, path: Path):
        self.fh = open(path, "a", encoding="utf-8")
        self.t0 = time.time()

    def emit(self, type: str, **fields) -> None:
        now = time.time()
        self.fh.write(json.dumps({"type": type, "time": now, "elapsed": round(now - self.t0, 3), **fields}) + "\n")
        self.fh.flush()


def write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def pretrain(out: Path, args, events: Events) -> str:
    steps_per_epoch = max(1, args.steps // 2)
    total = steps_per_epoch * 2 if not args.forever else 10**9
    events.emit("start", kind="pretrain", pid=os.getpid(), run_dir=str(out), total_steps=total,
                steps_per_epoch=steps_per_epoch, epochs=2)
    for name in ("data", "tokenize", "model_init"):
        events.emit("phase", name=name, seconds=0.01)
    events.emit("log", message="fake model: 1.2M parameters")
    step, loss = 0, 0.0
    while step < total:
        if stop:
            return "stopped"
        step += 1
        epoch = (step - 1) // steps_per_epoch + 1
        loss = 10.0 / (1 + 0.05 * step)
        events.emit("loss", step=step, epoch=epoch, loss=round(loss, 4), lr=1e-3, tokens_per_s=12345.0)
        if step % steps_per_epoch == 0:
            events.emit("eval", epoch=epoch, step=step, eval_loss=round(loss * 1.1, 4))
        if args.fail and step == 3:
            raise RuntimeError("CUDA out of memory (fake)")
        time.sleep(args.delay)
    events.emit("phase", name="train", seconds=round(time.time() - events.t0, 3))
    return "completed"


def evaluate(out: Path, args, events: Events) -> str:
    total = args.steps if not args.forever else 10**9
    events.emit("start", kind="eval", pid=os.getpid(), total=total, run_dir=str(out))
    events.emit("log", message="loaded fake model")
    with open(out / "results.jsonl", "a", encoding="utf-8") as results:
        done = 0
        while done < total:
            if stop:
                return "stopped"
            batch = min(4, total - done)
            for index in range(done, done + batch):
                gold = "ABCD"[index % 4]
                pred = [gold, "A", "B", None][index % 4]
                results.write(json.dumps({
                    "index": index, "subject": "moral_scenarios", "question": f"Question {index}?",
                    "prompt": f"Prompt for question {index}\nA. yes\nB. no\nC. maybe\nD. never\nAnswer:",
                    "gold": gold, "pred": pred, "correct": pred == gold,
                    "output": f"The answer is {pred or 'unclear'} because reasons {index}.", "new_tokens": 9,
                }, ensure_ascii=False) + "\n")
            results.flush()
            done += batch
            events.emit("progress", done=done, total=total, tokens_per_s=321.0, batch_size=4)
            if args.fail and done >= 4:
                raise RuntimeError("model weights not found (fake)")
            time.sleep(args.delay)
    return "completed"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--forever", action="store_true")
    parser.add_argument("kind", choices=("pretrain", "eval"))
    args, rest = parser.parse_known_args()
    out = Path(rest[rest.index("--out") + 1])
    signal.signal(signal.SIGINT, _interrupted)
    print(f"fake {args.kind} starting with {' '.join(rest)}", flush=True)
    write_json(out / "config.json", {"kind": args.kind, "options": rest[:-2], "steps": args.steps})
    events = Events(out / "events.jsonl")
    summary: dict = {"kind": args.kind}
    try:
        status = (pretrain if args.kind == "pretrain" else evaluate)(out, args, events)
    except Exception as exc:
        print(f"Traceback (most recent call last):\n  fake frame\n{type(exc).__name__}: {exc}", flush=True)
        status, summary["error"] = "failed", str(exc)
    summary.update(status=status, total_seconds=round(time.time() - events.t0, 3))
    if args.kind == "pretrain":
        summary.update(final_loss=1.234, eval_loss=1.357, steps=args.steps, n_params=1_200_000)
    else:
        summary.update(accuracy=0.5, correct=args.steps // 2, n=args.steps, answer_counts={})
    events.emit("end", status=status, **({"error": summary["error"]} if "error" in summary else {}))
    (out / "report.md").write_text(f"# Fake {args.kind} report\n\nStatus: **{status}**\n")
    write_json(out / "summary.json", summary)
    print(f"{status} in {summary['total_seconds']} s", flush=True)
    return {"completed": 0, "stopped": 130}.get(status, 1)


if __name__ == "__main__":
    sys.exit(main())
