"""The `llmlab` command line: one module per topic, one typed function per subcommand, its docstring the `--help`.

This package is the only place that imports typer; every command calls the Python API (`llmlab` and its topic
packages). Results go to stdout, progress and logs to stderr. Any `LlmlabError`, a usage error (an unknown
option, a number out of its range) or an operating-system error (disk full, permission denied) becomes one line
on stderr and exit status 2, without a traceback, with any password in a URL masked. Python warnings and
notices (`llmlab.errors.notice`) of a command that then fails are dropped, so the error stays the only line;
notices show once work starts (a progress bar, a server), warnings after success, one line each.
"""

from __future__ import annotations

import sys
import warnings

import typer
from typer._click import exceptions as click_exceptions

from llmlab.cli import abtest, convert, demo, evaluate, finetune, pretrain, serve, study, tokenizer, tune
from llmlab.errors import LlmlabError, hold_notices, mask_secrets, release_notices

app = typer.Typer(
    help="llmlab: the building blocks of large language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tokenizer.app, name="tokenizer")
pretrain.register(app)
app.add_typer(study.app, name="study")
convert.register(app)
finetune.register(app)
evaluate.register(app)
tune.register(app)
abtest.register(app)
serve.register(app)
demo.register(app)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning user errors into one line on stderr and exit status 2."""
    hold_notices()
    with warnings.catch_warnings(record=True) as caught:
        try:
            code = app(args=argv, prog_name="llmlab", standalone_mode=False)
        except click_exceptions.NoArgsIsHelpError as e:  # the help was printed
            return e.exit_code
        except click_exceptions.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "llmlab"
            return _error(f"{where}: {e.format_message()} (see --help)")
        except typer.Abort:
            return _error("interrupted", 130)
        except LlmlabError as e:
            return _error(str(e))
        except OSError as e:  # the environment: disk full, permission denied, a vanished file
            return _error(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e))
        except click_exceptions.ClickException as e:  # e.g. a file option typer could not open
            return _error(e.format_message())
        except MemoryError:
            return _error("out of memory")
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 0
    release_notices()
    for w in caught:
        print(f"llmlab: warning: {_one_line(str(w.message))}", file=sys.stderr)
    return code if isinstance(code, int) else 0


def _one_line(message: str) -> str:
    return mask_secrets(" ".join(message.split()))


def _error(message: str, code: int = 2) -> int:
    release_notices(show=False)  # "precision: ..." and the like: the error is the only line
    print(f"llmlab: error: {_one_line(message)}", file=sys.stderr)
    return code
