"""Every command × every kind of bad input: one line on stderr, exit 2, no traceback, nothing written, nothing changed.

MATRIX holds, for every command the CLI has, one entry per input class: the command line that gives it
that bad input, or the reason the class does not apply to it. The command list is read from the CLI
itself, so a new command without its row fails `test_every_command_has_a_row_for_every_input_class`.
Each refusal's message is then checked for the options it suggests: each must be one the command (or
the `llmlab <command>` it quotes) really has.

Inputs that are fine however odd they look (a byte-order mark, CRLF line ends, extra fields, duplicated
rows) are read the same as their plain twins: `test_odd_but_valid_files_read_like_plain_ones`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex

import click
import pytest

from core.cli import _register_subcommands, cli, main

# The input classes of issue 21; every command has an entry for each.
CLASSES = ("missing", "empty", "binary", "not-utf8", "columns", "numbers", "non-finite", "out-unwritable",
           "out-not-empty", "out-is-file", "wrong-kind", "wrong-base", "template", "offline")


def na(reason: str) -> tuple[str, str]:
    return ("n/a", reason)


NO_OUT = na("writes no run folder or file")
NO_BASE = na("takes no model or adapter")
NO_TEMPLATE = na("takes no prompt template")

DEMO_ADAPTER = "--demo --adapter {lora}"
MATRIX: dict[str, dict[str, object]] = {
    "pretrain": {
        "missing": "pretrain --data {in}/missing.txt", "empty": "pretrain --data {in}/empty.txt",
        "binary": "pretrain --data {in}/binary.txt", "not-utf8": "pretrain --data {in}/latin1.txt",
        "columns": "pretrain --data {in}/notext.csv", "numbers": "pretrain --data {in}/corpus.txt --epochs 0",
        "non-finite": "pretrain --data {in}/corpus.txt --lr inf",
        "out-unwritable": "pretrain --data {in}/corpus.txt --out {in}/a-file/run",
        "out-not-empty": "pretrain --data {in}/corpus.txt --out {eval_run}",
        "out-is-file": "pretrain --data {in}/corpus.txt --out {in}/a-file",
        "wrong-kind": "pretrain --resume {eval_run}", "wrong-base": na("trains a model from scratch"),
        "template": NO_TEMPLATE, "offline": "pretrain --data nobody/no-such-dataset",
    },
    "finetune": {
        "missing": "finetune --data {in}/missing.csv", "empty": "finetune --data {in}/empty.csv",
        "binary": "finetune --data {in}/binary.csv", "not-utf8": "finetune --data {in}/latin1.jsonl",
        "columns": "finetune --data {in}/cols.csv", "numbers": "finetune --demo --rank 0",
        "non-finite": "finetune --demo --lr nan", "out-unwritable": "finetune --demo --out {in}/a-file/run",
        "out-not-empty": "finetune --demo --out {eval_run}", "out-is-file": "finetune --demo --out {in}/a-file",
        "wrong-kind": "finetune --data {exam} --model {eval_run}", "wrong-base": na("trains a new adapter on the base it is given"),
        "template": "finetune --demo --template math", "offline": "finetune --data {exam} --model nobody/no-such-model",
    },
    "eval": {
        "missing": "eval --model {model} --data {in}/missing.csv", "empty": "eval --model {model} --data {in}/empty.csv",
        "binary": "eval --model {model} --data {in}/binary.csv", "not-utf8": "eval --model {model} --data {in}/gbk-mmmlu.csv",
        "columns": "eval --model {model} --data {in}/cols.csv", "numbers": "eval --demo --limit 0",
        "non-finite": na("has no real-valued option"), "out-unwritable": "eval --demo --out {in}/a-file/run",
        "out-not-empty": "eval --demo --out {eval_run}", "out-is-file": "eval --demo --out {in}/a-file",
        "wrong-kind": "eval --resume {pre_run}", "wrong-base": "eval --demo --adapter {gpt2_lora}",
        "template": na("the seed task's prompt is fixed"), "offline": "eval --model nobody/no-such-model --data {in}/ok.csv",
    },
    "squad": {
        "missing": "squad --data {in}/missing.json", "empty": "squad --data {in}/empty.json",
        "binary": "squad --data {in}/binary.json", "not-utf8": "squad --data {in}/latin1.json",
        "columns": "squad --data {in}/squad-no-context.jsonl", "numbers": "squad --demo --max-new-tokens 0",
        "non-finite": "squad --demo --retain-threshold nan", "out-unwritable": "squad --demo --out {in}/a-file/run",
        "out-not-empty": "squad --demo --out {eval_run}", "out-is-file": "squad --demo --out {in}/a-file",
        "wrong-kind": "squad --demo --adapter {eval_run}", "wrong-base": "squad --demo --adapter {gpt2_lora}",
        "template": "squad --demo --prompt 'C: {{context}} Q: {{question}} {{bogus}}'",
        "offline": "squad --data {squad} --model nobody/no-such-model",
    },
    "math": {
        "missing": "math --data {in}/missing.jsonl", "empty": "math --data {in}/empty.jsonl",
        "binary": "math --data {in}/binary.jsonl", "not-utf8": "math --data {in}/latin1.jsonl",
        "columns": "math --data {in}/math-no-solution.jsonl", "numbers": "math --demo --limit 0",
        "non-finite": "math --demo --tolerance nan", "out-unwritable": "math --demo --out {in}/a-file/run",
        "out-not-empty": "math --demo --out {eval_run}", "out-is-file": "math --demo --out {in}/a-file",
        "wrong-kind": "math --demo --adapter {eval_run}", "wrong-base": "math --demo --adapter {gpt2_lora}",
        "template": "math --demo --prompt 'Q: {{problem}} {{0}}'", "offline": "math --data {math} --model nobody/no-such-model",
    },
    "vote": {
        "missing": "vote {in}/missing-run {e1}", "empty": "vote {in}/empty-run {e1}", "binary": "vote {binary_run} {e1}",
        "not-utf8": "vote {latin1_run} {e1}", "columns": "vote {letterless_run} {e1}", "numbers": "vote {e1}",
        "non-finite": na("has no real-valued option"), "out-unwritable": "vote {e1} {e2} --out {in}/a-file/run",
        "out-not-empty": "vote {e1} {e2} --out {eval_run}", "out-is-file": "vote {e1} {e2} --out {in}/a-file",
        "wrong-kind": "vote {pre_run} {e1}", "wrong-base": NO_BASE, "template": NO_TEMPLATE,
        "offline": na("reads only local run folders"),
    },
    "tokenizer train": {
        "missing": "tokenizer train --data {in}/missing.txt", "empty": "tokenizer train --data {in}/empty.txt",
        "binary": "tokenizer train --data {in}/binary.txt", "not-utf8": "tokenizer train --data {in}/latin1.txt",
        "columns": "tokenizer train --data {in}/notext.csv", "numbers": "tokenizer train --demo --vocab-size 10",
        "non-finite": na("has no real-valued option"), "out-unwritable": "tokenizer train --demo --out {in}/a-file/run",
        "out-not-empty": "tokenizer train --demo --out {eval_run}", "out-is-file": "tokenizer train --demo --out {in}/a-file",
        "wrong-kind": "tokenizer train --demo --compare {eval_run}", "wrong-base": NO_BASE, "template": NO_TEMPLATE,
        "offline": "tokenizer train --demo --compare nobody/no-such-tokenizer",
    },
    "export": {
        "missing": "export --demo --adapter {in}/missing-adapter --out {in}/merged",
        "empty": "export --demo --adapter {in}/empty-dir --out {in}/merged",
        "binary": "export --demo --adapter {binary_adapter} --out {in}/merged",
        "not-utf8": "export --demo --adapter {latin1_adapter} --out {in}/merged",
        "columns": "export --demo --adapter {prefix_adapter} --out {in}/merged", "numbers": na("has no number option"),
        "non-finite": na("has no number option"), "out-unwritable": DEMO_ADAPTER + " --out {in}/a-file/merged",
        "out-not-empty": DEMO_ADAPTER + " --out {eval_run}", "out-is-file": DEMO_ADAPTER + " --out {in}/a-file",
        "wrong-kind": "export --adapter {eval_run} --out {in}/merged",
        "wrong-base": "export --demo --adapter {gpt2_lora} --out {in}/merged", "template": NO_TEMPLATE,
        "offline": "export --model nobody/no-such-model --adapter {lora} --out {in}/merged",
    },
    "generate": {
        "missing": "generate --model {in}/missing-model --prompt hi", "empty": "generate --model {in}/empty-dir --prompt hi",
        "binary": "generate --model {damaged} --prompt hi", "not-utf8": "generate --run {latin1_run} --prompt hi",
        "columns": "generate --model {no_tokenizer} --prompt hi", "numbers": "generate --model {model} --prompt hi --max-new-tokens 0",
        "non-finite": "generate --model {model} --prompt hi --temperature nan", "out-unwritable": NO_OUT,
        "out-not-empty": NO_OUT, "out-is-file": NO_OUT, "wrong-kind": "generate --run {eval_run} --prompt hi",
        "wrong-base": "generate --model {model} --adapter {gpt2_lora} --prompt hi", "template": "generate --model {model} --prompt ''",
        "offline": "generate --model nobody/no-such-model --prompt hi",
    },
    "data preview": {
        "missing": "data preview --data {in}/missing.txt", "empty": "data preview --data {in}/empty.txt",
        "binary": "data preview --data {in}/binary.txt", "not-utf8": "data preview --data {in}/latin1.txt",
        "columns": "data preview --data {in}/notext.csv", "numbers": "data preview --data {in}/corpus.txt --rows 0",
        "non-finite": na("has no real-valued option"), "out-unwritable": NO_OUT, "out-not-empty": NO_OUT,
        "out-is-file": NO_OUT, "wrong-kind": "data preview --data {in}/corpus.txt --tokenizer {eval_run}",
        "wrong-base": NO_BASE, "template": NO_TEMPLATE, "offline": "data preview --data nobody/no-such-dataset",
    },
    "hw": {name: na("reads nothing the user gives: it describes this machine") for name in CLASSES},
    "serve": {
        "missing": "serve --runs {in}/missing-runs --port 18431", "empty": na("takes no file to read"),
        "binary": na("takes no file to read"), "not-utf8": na("takes no file to read"), "columns": na("takes no file to read"),
        "numbers": "serve --port 0", "non-finite": na("has no real-valued option"),
        "out-unwritable": na("writes no run folder itself (its apps do)"), "out-not-empty": na("writes no run folder itself"),
        "out-is-file": "serve --runs {in}/a-file --port 18431", "wrong-kind": na("takes no run folder"),
        "wrong-base": NO_BASE, "template": NO_TEMPLATE, "offline": na("needs no network"),
    },
}


def leaf_commands(group: click.Group = cli, prefix: str = "") -> list[str]:
    _register_subcommands()
    out = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        out += leaf_commands(command, path + " ") if isinstance(command, click.Group) else [path]
    return out


def command_of(path: str) -> click.Command:
    command = cli
    for word in path.split():
        command = command.commands[word]
    return command


def test_every_command_has_a_row_for_every_input_class():
    assert sorted(MATRIX) == sorted(leaf_commands()), "a command without its row in MATRIX (or a row for no command)"
    for command, row in MATRIX.items():
        assert set(row) == set(CLASSES), f"{command}: classes {sorted(set(CLASSES) ^ set(row))} missing or unknown"


CASES = [(command, name, entry) for command, row in MATRIX.items() for name, entry in row.items() if isinstance(entry, str)]


@pytest.fixture(scope="module")
def extra(shared, tmp_path_factory):
    """Inputs the shared bad-input world lacks: adapters, SQuAD and math files, runs of answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    from core.eval.config import DEMO_DATA
    from core.math.config import DEMO_MATH
    from core.squad.config import DEMO_SQUAD

    root = tmp_path_factory.mktemp("extra")
    torch.manual_seed(0)
    lora = root / "lora"  # a LoRA of the demo model, as fine-tuning saves one (untrained: export only merges it)
    get_peft_model(AutoModelForCausalLM.from_pretrained(shared["model"]),
                   LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(lora)
    gpt2_lora = root / "gpt2-lora"  # a LoRA of another base
    get_peft_model(GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32)),
                   LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True)).save_pretrained(gpt2_lora)
    adapters = {}
    for name, config in (("binary_adapter", bytes(range(256)) * 4), ("latin1_adapter", '{"peft_type": "LORA", "x": "é"}'.encode("latin-1")),
                         ("prefix_adapter", json.dumps({"peft_type": "PREFIX_TUNING"}).encode())):
        folder = root / name
        folder.mkdir()
        (folder / "adapter_config.json").write_bytes(config)
        adapters[name] = folder
    runs = {}
    row = {"qid": "0", "index": 0, "question": "q", "gold": "A", "pred": "A", "correct": True}
    for name, results in (("e1", json.dumps(row) + "\n"), ("e2", json.dumps({**row, "pred": "B", "correct": False}) + "\n"),
                          ("letterless_run", '{"qid": "0", "index": 0}\n'), ("binary_run", bytes(range(256)) * 4),
                          ("latin1_run", '{"qid": "é"}\n'.encode("latin-1"))):
        folder = root / name
        folder.mkdir()
        config = {"kind": "eval"} if name != "latin1_run" else None
        (folder / "config.json").write_bytes(json.dumps(config).encode() if config else '{"kind": "é"}'.encode("latin-1"))
        (folder / "results.jsonl").write_bytes(results if isinstance(results, bytes) else results.encode())
        (folder / "summary.json").write_text('{"status": "completed"}', encoding="utf-8")
        runs[name] = folder
    return {"lora": lora, "gpt2_lora": gpt2_lora, "exam": DEMO_DATA, "squad": DEMO_SQUAD, "math": DEMO_MATH,
            **adapters, **runs}


@pytest.fixture()
def place(world, extra):
    inp = world["in"]
    for name in ("empty.json", "empty.jsonl"):
        (inp / name).write_bytes(b"")
    for name in ("binary.json", "binary.jsonl"):
        (inp / name).write_bytes(bytes(range(256)) * 16)
    latin1 = "élan\n".encode("latin-1")
    for name, text in (("latin1.txt", latin1), ("latin1.json", '[{"id": "é"}]'.encode("latin-1")),
                       ("latin1.jsonl", '{"problem": "é?", "solution": "1"}\n'.encode("latin-1"))):
        (inp / name).write_bytes(text)
    (inp / "squad-no-context.jsonl").write_text(json.dumps({"id": "1", "question": "Q?", "answers": {"text": ["a"]}}) + "\n",
                                                encoding="utf-8")
    (inp / "math-no-solution.jsonl").write_text('{"problem": "1 + 1?"}\n', encoding="utf-8")
    (inp / "empty-dir").mkdir()
    (inp / "empty-run").mkdir()
    return {**world, **extra}


def digest(folder) -> dict:
    """Every file under `folder` with a hash of its bytes: what must be exactly the same after a refused command."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("command,name,argv", CASES, ids=[f"{c.replace(' ', '-')}-{n}" for c, n, _ in CASES])
def test_bad_input_is_refused_in_one_line_and_touches_nothing(place, capsys, command, name, argv):
    args = [a.format(**place) for a in shlex.split(argv)]
    watched = {key: digest(place[key]) for key in ("runs", "in")}
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("llmlab: error: "), err
    assert {key: digest(place[key]) for key in watched} == watched  # nothing new, nothing changed, nothing lost
    assert_suggestions_exist(command, lines[0])


def assert_suggestions_exist(command: str, line: str) -> None:
    """Every --option a refusal names exists: on the `llmlab <command>` it quotes, else on the command that refused."""
    quoted = [(m.start(), m.end(), m.group(1)) for m in re.finditer(r"llmlab ((?:[a-z]+ ?)+?)(?= --|['`]|$)", line)]
    for flag in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line):
        target = command
        for start, end, words in quoted:  # a flag right after `llmlab <command>` in the same quote belongs to it
            if start < flag.start() and "'" not in line[end:flag.start()] and "`" not in line[end:flag.start()]:
                target = _command_path(words.strip())
        options = {opt for param in command_of(target).params for opt in (*param.opts, *param.secondary_opts)}
        assert flag.group(1) in options | {"--help"}, f"'{line}' suggests {flag.group(1)}, which llmlab {target} lacks"


def _command_path(words: str) -> str:
    parts = words.split()
    return " ".join(parts[:2]) if parts[0] in ("tokenizer", "data") else parts[0]


def test_odd_but_valid_files_read_like_plain_ones(tmp_path):
    """A UTF-8 byte-order mark, CRLF line ends, extra columns or fields and a repeated row are not errors."""
    from core.corpus import load_corpus
    from core.finetune.data import load_questions
    from core.mmmlu import load_csv
    from core.qa.math import load_math
    from core.scoring.squad import load_squad

    def variants(name: str, text: str) -> list:
        plain, odd = tmp_path / f"plain-{name}", tmp_path / f"odd-{name}"
        plain.write_text(text, encoding="utf-8")
        odd.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
        return [plain, odd]

    corpus = "one row .\ntwo rows .\nthree rows .\n" * 4
    a, b = variants("corpus.txt", corpus)
    assert load_corpus(str(a), 8, 2).train == load_corpus(str(b), 8, 2).train
    a, b = variants("corpus.jsonl", "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(corpus.split("\n")[:6])))
    assert load_corpus(str(a), 4, 2).train == load_corpus(str(b), 4, 2).train
    exam = ",Question,A,B,C,D,Answer,Subject,Extra\n" + "".join(f"{i},Q{i}?,w,x,y,z,B,s,note\n" for i in range(6)) + "6,Q0?,w,x,y,z,B,s,again\n"
    a, b = variants("exam.csv", exam)
    assert load_questions(a)[0] == load_questions(b)[0] and len(load_csv(b)) == 7
    maths = "".join(json.dumps({"id": str(i), "problem": f"{i} + 1?", "solution": f"{i + 1}", "source": "x"}) + "\n" for i in range(4))
    a, b = variants("math.jsonl", maths)
    assert load_math(a) == load_math(b)
    squad = "".join(json.dumps({"id": str(i), "context": "c d", "question": "q?", "answers": {"text": ["c"]}, "more": 1}) + "\n"
                    for i in range(3))
    a, b = variants("squad.jsonl", squad)
    assert load_squad(a) == load_squad(b)
