"""The one error type users see.

Anything a user can get wrong (a file, a flag, a corrupt artefact) raises `LlmlabError` with one line that
names the file and the problem; the CLI prints it to stderr and exits non-zero, without a traceback.
"""


class LlmlabError(Exception):
    """A user-facing error: one line naming the file (or setting) and what is wrong with it."""
