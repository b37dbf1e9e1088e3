"""Evaluation: metrics with confidence intervals, fit diagnosis, a linear baseline, hyperparameter search."""
