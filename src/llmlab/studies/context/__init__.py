"""The context-extension study (`llmlab study context`): a RoPE LM trained short, extended by each method.

run.py (protocol, sizes, the runs), data.py (corpus, tokenizer, documents), passkey.py (Mohtashami &
Jaggi's retrieval task), report.py (tables, heatmap, HTML). The RoPE methods themselves live in
llmlab.model (positional/rope_scaling.py, extend.py).
"""

from llmlab.studies.context.run import FULL, QUICK, ContextSizes, check_results, run_context_study

__all__ = ["FULL", "QUICK", "ContextSizes", "check_results", "run_context_study"]
