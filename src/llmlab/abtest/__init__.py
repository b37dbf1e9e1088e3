"""A/B testing of model variants: offline paired tests, an online experiment server, and its statistics.

    from llmlab.abtest import compare
    compare("runs/full", "runs/lora", "test.csv")["verdict"]

The server (`llmlab.abtest.server`) needs the `serve` extra (starlette, uvicorn) and is imported from its module.
"""

from llmlab.lazy import lazy_exports

_EXPORTS = {"compare": "llmlab.abtest.compare_models", "compare_predictions": "llmlab.abtest.offline"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
