"""The Chinese study (`llmlab study chinese`): which tokenizer serves Chinese best, measured end to end.

run.py (protocol, sizes, the job scheduler), jobs.py (tokenizer, pretraining, fine-tuning and baseline
jobs), tokenizers.py (the three families and their statistics), data.py (corpus and labelled sets),
report.py (tables, figures, HTML). Masked-LM pretraining lives in llmlab.pretraining (objective "mlm").
"""

from llmlab.studies.chinese.run import FULL, QUICK, ChineseSizes, TaskSizes, check_results, run_chinese_study

__all__ = ["FULL", "QUICK", "ChineseSizes", "TaskSizes", "check_results", "run_chinese_study"]
