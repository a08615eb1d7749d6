"""GPT-2 pretraining from scratch: data, tokenization cache, packing, the training loop, reports."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    if not isinstance(summary.get("final_loss"), (int, float)):
        return ""
    text = f"loss {summary['final_loss']:.3f}"
    if isinstance(summary.get("eval_loss"), (int, float)):
        text += f" (eval {summary['eval_loss']:.3f})"
    return text


KIND = Kind(
    name="pretrain", noun="a pretraining run", config="core.pretrain.config:PretrainConfig",
    job="core.pretrain.run:PretrainJob", demo="core.pretrain.config:demo_config", demo_choices=("en", "zh"),
    demo_help="Offline demo: 'en' (the default) a BookCorpus-shaped sample with GPT-2's BPE; 'zh' a Chinese sample "
              "with its own byte-level BPE and generation samples (~1 min on 2 cores).",
    processes=True,
    help="Pretrain GPT-2 from scratch (seed task: first 10,000 BookCorpus rows, 3 epochs).",
    figures=("final_loss", "eval_loss", "steps", "epochs", "rows", "n_params", "tokens_per_epoch", "train_seconds",
             "total_seconds"),
    headline=headline, resumable=True, plan="core.pretrain.plan:memory_plan",
)
