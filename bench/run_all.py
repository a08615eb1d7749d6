"""Both benches in one command, sized for a short GPU session.

    python bench/run_all.py --gpu-budget --results-dir "$OUT/results"   # headline tables, ~6 min on one H100 [estimate]
    python bench/run_all.py --levers --results-dir "$OUT/results"       # one speed lever at a time, ~6 min [estimate]
    python bench/run_all.py --smoke                                      # the CPU check, a few minutes

--gpu-budget runs the headline configurations at 1x, 2x and 4x the work with the slow baselines
timed on subsets (scaled, and labelled so in the tables) and a deadline per bench, so the whole
command ends well inside one 10-minute device call. Runs that would not fit are skipped and
listed as skipped, never estimated. Afterwards, copy the result files into bench/results/ and run
`python -m bench.report --update-readme`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (bench script, arguments, share of the deadline). The pretrain baseline at 1x is given enough
# time to finish on an H100 [estimate: ~90 s for 3,750 small fp32 steps]: its losses are the
# quality reference. Eval's baseline is 512 tokens per question one at a time, so only a few run.
GPU_BUDGET = [
    ("pretrain.py", ["--scale", "1,2,4", "--baseline-max-seconds", "100", "--baseline-max-seconds-scaled", "10"], 0.55),
    ("eval.py", ["--scale", "1,2,4", "--baseline-questions", "3", "--fp32-check", "2"], 0.45),
]
LEVERS = [
    ("pretrain.py", ["--skip-baseline", "--skip-cold", "--levers", "fast", "--name", "pretrain-levers"], 0.5),
    ("eval.py", ["--skip-baseline", "--levers", "fast", "--name", "eval-levers"], 0.5),
]
COMPILE_LEVERS = [
    ("pretrain.py", ["--skip-baseline", "--skip-cold", "--levers", "compile", "--name", "pretrain-compile"], 0.5),
    ("eval.py", ["--skip-baseline", "--levers", "compile,compile-cudagraphs", "--name", "eval-compile"], 0.5),
]
SMOKE = [("pretrain.py", ["--smoke"], 0.5), ("eval.py", ["--smoke", "--fp32-check", "1"], 0.5)]
# bench/gpu_check.sh: the seed pretraining against an UNCAPPED Trainer (its held-out loss is the quality
# reference), then eval at 1x with every lever (compile last: the deadline drops what does not fit),
# the one-at-a-time baseline on 3 questions (scaled, labelled) and the plain batched baseline.
# Then the evidence for the GPU defaults (issue 23): tokens per step 8, 32 and 64 x 128 with the lr scaled, the
# chunked loss and Muon, each the full seed run with its held-out loss and wall time.
GPU_CHECK = [
    ("pretrain.py", ["--scale", "1", "--name", "gpu-check-pretrain"], 0.35),
    ("pretrain.py", ["--skip-baseline", "--skip-cold", "--levers",
                     "base,batch32-lr2e-3,batch64-lr2.8e-3,chunked-loss-on,muon", "--name", "gpu-check-pretrain-sweep"],
     0.25),
    ("eval.py", ["--scale", "1", "--baseline-questions", "3", "--fp32-check", "2", "--batched-baseline",
                 "--levers", "all", "--name", "gpu-check-eval"], 0.4),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--gpu-budget", action="store_true", help="headline tables at 1x/2x/4x, baselines on subsets")
    mode.add_argument("--levers", action="store_true", help="llmlab with one lever changed at a time (no compile)")
    mode.add_argument("--compile-levers", action="store_true", help="the torch.compile levers (slow first compile)")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes on a CPU: checks the scripts")
    mode.add_argument("--gpu-check", action="store_true", help="what bench/gpu_check.sh runs: seed pretraining with "
                      "an uncapped baseline, eval with every lever")
    ap.add_argument("--deadline", type=float, default=420, help="seconds for everything (default 420)")
    ap.add_argument("--results-dir", help="passed to each bench (on a device machine: somewhere under $OUT)")
    ap.add_argument("--gpt2-bpe", help="passed to each bench")
    ap.add_argument("--model", help="a local model folder for the eval bench")
    args = ap.parse_args(argv)
    plan = (GPU_BUDGET if args.gpu_budget else LEVERS if args.levers else COMPILE_LEVERS if args.compile_levers
            else GPU_CHECK if args.gpu_check else SMOKE)
    t0 = time.monotonic()
    failures = 0
    for i, (script, bench_args, share) in enumerate(plan):
        left = args.deadline - (time.monotonic() - t0)
        # A bench gets its share of the whole deadline, plus whatever the benches before it left unused.
        later = sum(s for _, _, s in plan[i + 1:])
        budget = left * share / (share + later)
        cmd = [sys.executable, str(ROOT / "bench" / script), *bench_args, "--deadline", f"{budget:.0f}"]
        if args.results_dir:
            cmd += ["--results-dir", args.results_dir]
        if args.gpt2_bpe:
            cmd += ["--gpt2-bpe", args.gpt2_bpe]
        if args.model and script == "eval.py":
            cmd += ["--model", args.model]
        print(f"[run_all] {' '.join(cmd[1:])}", flush=True)
        rc = subprocess.call(cmd, cwd=ROOT)
        failures += rc != 0
        print(f"[run_all] {script} exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
