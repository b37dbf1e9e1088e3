"""`llmlab study positions`: permutation equivariance, word order, train short / test long, pictures.

Modules: run.py (run_position_study, sizes), permutation.py, word_order.py (+ baselines.py, a GRU and a CNN),
extrapolation.py, pictures.py, report.py (tables and report sections).
"""

from llmlab.studies.positions.run import FULL, QUICK, StudySizes, run_position_study

__all__ = ["FULL", "QUICK", "StudySizes", "run_position_study"]
