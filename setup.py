"""Build of llmlab's compiled tokenizer core (src/llmlab/tokenizer/_core/, bound with nanobind).

`pip install .` and `pip install -e .` compile it with the machine's C++ compiler; nanobind and setuptools come
from PyPI through pip's build isolation ([build-system] in pyproject.toml). The extension is optional: where
it cannot be built (no compiler, no nanobind) the install still succeeds and llmlab runs its pure-Python
tokenizers, saying so once on stderr. Everything else about the package is in pyproject.toml.

LLMLAB_CORE_CFLAGS adds compiler flags (e.g. "-fsanitize=address -O1 -g", as the sanitizer test does).
"""

import os
import shlex
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CORE = Path("src/llmlab/tokenizer/_core")


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a core that does not build leaves the pure-Python path."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001  (any compiler failure: fall back, say why)
            print(
                f"llmlab: the compiled tokenizer core was not built ({e}); using pure Python", file=sys.stderr
            )


def core_extension() -> list[Extension]:
    try:
        import nanobind
    except ImportError:
        print("llmlab: nanobind is not installed; the tokenizer core is not built", file=sys.stderr)
        return []
    nb = Path(nanobind.source_dir()).parent
    flags = [
        "-std=c++17",
        "-O3",
        "-g0",
        "-fvisibility=hidden",
        "-fno-strict-aliasing",
        "-DNDEBUG",
        "-DNB_COMPACT_ASSERTIONS",
    ]
    flags += shlex.split(os.environ.get("LLMLAB_CORE_CFLAGS", ""))
    return [
        Extension(
            "llmlab.tokenizer._corelib",
            sources=[*sorted(str(p) for p in CORE.glob("*.cpp")), str(nb / "src" / "nb_combined.cpp")],
            depends=sorted(str(p) for p in CORE.glob("*.h")),
            include_dirs=[str(nb / "include"), str(nb / "ext" / "robin_map" / "include")],
            extra_compile_args=flags,
            extra_link_args=shlex.split(os.environ.get("LLMLAB_CORE_LDFLAGS", "")),
            language="c++",
            optional=True,
        )
    ]


setup(ext_modules=core_extension(), cmdclass={"build_ext": OptionalBuildExt})
