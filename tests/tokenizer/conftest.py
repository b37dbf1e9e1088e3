"""Both tokenizer paths: the `engine` fixture runs a test module once on the compiled core and once on the pure
Python path (LLMLAB_PURE_PYTHON), so every parity test holds on both. Opt in with
`pytestmark = pytest.mark.usefixtures("engine")`, and let module-scoped fixtures that build tokenizers take
`engine` too (they are then built once per path)."""

from __future__ import annotations

import pytest

from llmlab.tokenizer import core


@pytest.fixture(scope="module", params=["core", "python"])
def engine(request):
    """ "core" or "python": the path Tokenizers built while it is active take."""
    if request.param == "core" and core._corelib is None:
        pytest.skip("the compiled tokenizer core is not built here")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_PURE_PYTHON", "0" if request.param == "core" else "1")
        yield request.param
