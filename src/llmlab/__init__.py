"""llmlab: the building blocks of large language models, implemented correctly, fast, and easy to read.

    import llmlab
    tok = llmlab.train_tokenizer(["corpus.txt"], model="unigram", vocab_size=8000)
    run = llmlab.finetune("base/", "train.csv", "dev.csv", method="lora", out="runs/lora")
    llmlab.evaluate(run.out_dir, "test.csv")["metrics"]["accuracy"]

The top level is the Python API (`llmlab.api`), loaded on first use so that `import llmlab.tokenizer` stays
light. Topic packages, in the order their imports run: `tokenizer` → `model` → `pretraining`, `finetuning` →
`evaluation` → `abtest` → `studies` → `demo` → `cli`; `report`, `io`, `errors` are shared utilities.
"""

from llmlab.lazy import lazy_exports

__version__ = "0.1.0"

_API = {
    "train_tokenizer": "llmlab.api",
    "load_model": "llmlab.api",
    "pretrain": "llmlab.api",
    "finetune": "llmlab.api",
    "FinetuneRun": "llmlab.api",
    "evaluate": "llmlab.api",
    "compare": "llmlab.api",
    "Tokenizer": "llmlab.tokenizer.pipeline",
    "LlmlabError": "llmlab.errors",
}
__all__ = sorted(_API)
__getattr__, __dir__ = lazy_exports(__name__, _API)
