"""`llmlab demo --precision`: fp32 by default with every kernel pinned; the bf16 modes leave ATen's capability
alone, run both training stages through the shared loops in that precision, and say so in the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmlab.cli import main
from llmlab.demo import finetune_stage as fs
from llmlab.demo import pretrain_stage as ps
from llmlab.demo import run
from llmlab.demo.kernels import BF16_BLOCKERS, PINNED_KERNELS, demo_kernels, unpinned_kernels
from llmlab.model import precision as mp
from tests.studies.test_positions import TINY_LM

# the CLI in a fresh interpreter, with run_demo replaced by a probe of what the process then runs with
PROBE = """
import json, os, sys, types
probe = types.ModuleType("llmlab.demo.run")
def run_demo(out, progress=True, precision="fp32"):
    import torch
    seen = {"precision": precision, "capability": torch.backends.cpu.get_cpu_capability()}
    seen["env"] = {name: os.environ.get(name) for name in json.loads(sys.argv[2])}
    print(json.dumps(seen))
    return out / "report.html", []
probe.run_demo = run_demo
sys.modules["llmlab.demo.run"] = probe
from llmlab.cli import main
sys.exit(main(["demo", "--out", sys.argv[1], "--quiet", *sys.argv[3:]]))
"""


def probe_cli(tmp_path: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINNED_KERNELS}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "demo"), json.dumps(list(PINNED_KERNELS)), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[0])


def test_fp32_is_the_default_and_pins_every_kernel(tmp_path):
    seen = probe_cli(tmp_path)
    assert seen["precision"] == "fp32"
    assert seen["env"] == PINNED_KERNELS
    assert seen["capability"] == "AVX2"  # ATen read the pin as it loaded


def test_bf16_mixed_leaves_aten_unpinned_and_keeps_the_rest(tmp_path):
    seen = probe_cli(tmp_path, "--precision", "bf16-mixed")
    assert seen["precision"] == "bf16-mixed"
    assert seen["env"] == {**PINNED_KERNELS, **dict.fromkeys(BF16_BLOCKERS)}
    assert seen["env"]["OMP_NUM_THREADS"] == "1"
    if mp.bf16_support("cpu") != "none":  # every bf16 x86 processor has AVX-512, which ATen then picks
        assert seen["capability"] != "AVX2", seen


def test_kernels_per_precision():
    assert demo_kernels() == demo_kernels("fp32") == PINNED_KERNELS
    for precision in ("auto", "bf16-mixed", "bf16"):  # "auto" is not known before torch loads
        kept = demo_kernels(precision)
        assert set(kept) == set(PINNED_KERNELS) - set(BF16_BLOCKERS)
        assert kept["OMP_NUM_THREADS"] == "1"


def test_unpinned_kernels_are_those_of_the_precision(monkeypatch):
    for name, value in PINNED_KERNELS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert unpinned_kernels("fp32") == ["ATEN_CPU_CAPABILITY"]
    assert unpinned_kernels("bf16-mixed") == []


@pytest.mark.parametrize(
    ("precision", "message"),
    [("fp16", "choose one of auto, fp32, bf16-mixed, bf16"), ("bf16", "no native bfloat16")],
)
def test_bad_precision_is_one_line_error(precision, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LLMLAB_NO_BF16", "1")  # a processor without bfloat16
    code = main(["demo", "--out", str(tmp_path / "demo"), "--quiet", "--precision", precision])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("llmlab: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "demo").exists()


def test_auto_without_bf16_runs_fp32_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LLMLAB_NO_BF16", "1")
    monkeypatch.setattr(mp, "_announced", set())
    ran = []
    monkeypatch.setattr(run, "_run", lambda out, progress, precision: ran.append(precision) or (out, []))
    run.run_demo(tmp_path, progress=False, precision="auto")
    assert ran == ["fp32"]
    assert capsys.readouterr().err.count("precision: fp32 (auto; bf16 support: none)") == 1


@pytest.fixture
def tiny_demo(monkeypatch):
    """The demo at toy sizes: 400 corpus lines, vocabulary 300, TINY_LM, 120 topic examples, one epoch."""
    corpus = run.demo_corpus()[:400]
    examples = fs.demo_classification()
    monkeypatch.setattr(run, "demo_corpus", lambda: corpus)
    monkeypatch.setattr(run, "DEMO_VOCAB_SIZE", 300)
    monkeypatch.setattr(ps, "DEMO", TINY_LM)
    monkeypatch.setattr(fs, "demo_classification", lambda: examples[:60] + examples[-60:])
    monkeypatch.setattr(fs, "DEMO_TRAIN", {**fs.DEMO_TRAIN, "epochs": 1, "batch_size": 16, "max_length": 16})
    predicted_in = []
    real = fs.load_predictor
    monkeypatch.setattr(fs, "load_predictor", lambda path, p: predicted_in.append(p) or real(path, p))
    return predicted_in


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16"])
def test_the_precision_reaches_every_stage(precision, tiny_demo, tmp_path):
    if precision == "bf16" and mp.bf16_support("cpu") == "none":
        pytest.skip("bf16 needs a processor with native bfloat16")
    report, summary = run.run_demo(tmp_path, progress=False, precision=precision)
    assert summary[0].endswith(f"1 torch thread, {precision}: figures differ from README's float32 ones)")
    html = report.read_text(encoding="utf-8")
    assert f"run in {precision}" in html and f"trained in {precision}" in html
    pretrained = sorted((tmp_path / "pretrain").glob("lm-*/pretrain_config.json"))
    assert len(pretrained) == len(ps.DEMO_ENCODINGS)
    assert {json.loads(p.read_text())["precision"] for p in pretrained} == {precision}
    for method in fs.DEMO_METHODS:
        history = json.loads((tmp_path / "finetune" / method / "history.json").read_text())
        assert history["train_config"]["precision"] == precision
    assert tiny_demo == [precision] * 4  # two evaluations, two models in the A/B comparison
