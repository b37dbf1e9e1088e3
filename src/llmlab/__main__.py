"""`python -m llmlab` runs the command-line program."""

import sys

from llmlab.cli import main

sys.exit(main())
