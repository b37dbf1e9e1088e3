"""Build of llmlab's compiled tokenizer core (src/llmlab/tokenizer/_core/, bound with nanobind).

`pip install .` and `pip install -e .` compile it with the machine's C++ compiler; nanobind and setuptools come
from PyPI through pip's build isolation ([build-system] in pyproject.toml), or from the environment with
`--no-build-isolation` (`pip install --no-build-isolation -e .` rebuilds the core in place after a change). The extension is optional: where
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
    """build_ext that never fails the install: a core that does not build leaves the pure-Python path.

    nanobind's own sources are added here, at build time: they lie outside this tree (in the build
    environment), and setup() may only name paths relative to setup.py (setuptools lists them in the manifest).
    """

    def build_extension(self, ext):
        try:
            import nanobind
        except ImportError:
            print("llmlab: nanobind is not installed; the tokenizer core is not built", file=sys.stderr)
            return
        nb = Path(nanobind.source_dir()).parent
        sources, include_dirs = ext.sources, ext.include_dirs
        ext.sources = [*sources, str(nb / "src" / "nb_combined.cpp")]
        ext.include_dirs = [*include_dirs, str(nb / "include"), str(nb / "ext" / "robin_map" / "include")]
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001  (any compiler failure: fall back, say why)
            print(
                f"llmlab: the compiled tokenizer core was not built ({e}); using pure Python", file=sys.stderr
            )
        finally:  # the manifest, written after the build in editable installs, lists the sources
            ext.sources, ext.include_dirs = sources, include_dirs


def core_extension() -> Extension:
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
    return Extension(
        "llmlab.tokenizer._corelib",
        sources=sorted(p.as_posix() for p in CORE.glob("*.cpp")),
        depends=sorted(p.as_posix() for p in CORE.glob("*.h")),
        extra_compile_args=flags,
        extra_link_args=shlex.split(os.environ.get("LLMLAB_CORE_LDFLAGS", "")),
        language="c++",
        optional=True,
    )


setup(ext_modules=[core_extension()], cmdclass={"build_ext": OptionalBuildExt})
