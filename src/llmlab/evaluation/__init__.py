"""Evaluation: metrics with confidence intervals, fit diagnosis, a linear baseline, hyperparameter search.

    from llmlab.evaluation import evaluate, metrics_with_ci, LinearBaseline
    evaluate("runs/lora", "dev.csv")["metrics"]["accuracy"]

Hyperparameter search (`llmlab.evaluation.search.tune`) needs the `tune` extra (optuna) and is imported from
its module.
"""

from llmlab.lazy import lazy_exports

_EXPORTS = {
    "Ensemble": "llmlab.evaluation.predictor",
    "LinearBaseline": "llmlab.evaluation.baseline",
    "Predictor": "llmlab.evaluation.predictor",
    "evaluate": "llmlab.evaluation.evaluate_models",
    "load_predictor": "llmlab.evaluation.predictor",
    "metrics_with_ci": "llmlab.evaluation.metrics",
    "read_history": "llmlab.evaluation.diagnose",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
