"""RoPE context extension: parity with transformers' ROPE_INIT_FUNCTIONS, the papers' shapes, the KV cache.

Reference: `transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS` fed a `LlamaConfig` whose rope parameters
come from our export mapping (`hf_rope_parameters`), so the mapping is checked too. Tolerance 1e-6 on the
inverse frequencies (all <= 1; measured ~5e-8, transformers computing in float32) and on the attention
factor. Static `ntk` has no transformers type: it is checked against `dynamic` at the length where the two
bases coincide, and against plain RoPE at the base that export writes.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.model import KVCache, ModelConfig, Transformer, generate
from llmlab.model.hf_llama import hf_rope_parameters
from llmlab.model.positional.rope_scaling import RopeScaling, inverse_frequencies
from llmlab.model.positional.rotary import Rotary

TOL = 1e-6
SCALINGS = {
    "linear": dict(rope_scaling="linear", rope_scaling_factor=4.0),
    "ntk": dict(rope_scaling="ntk", rope_scaling_factor=4.0),
    "dynamic": dict(rope_scaling="dynamic", rope_scaling_factor=2.0, rope_original_max_position=8),
    "yarn": dict(
        rope_scaling="yarn", rope_scaling_factor=4.0, rope_original_max_position=8, rope_beta_fast=8.0
    ),
    "llama3": dict(
        rope_scaling="llama3",
        rope_scaling_factor=4.0,
        rope_original_max_position=8,
        rope_high_freq_factor=2.0,
    ),
}
PARITY = [  # (head size, theta, settings): the study's, Llama 3.1's and YaRN-paper-like configurations
    (16, 10000.0, dict(rope_scaling="linear", rope_scaling_factor=2.0)),
    (128, 500000.0, dict(rope_scaling="linear", rope_scaling_factor=8.0)),
    (16, 10000.0, dict(rope_scaling="dynamic", rope_scaling_factor=1.0, rope_original_max_position=128)),
    (64, 10000.0, dict(rope_scaling="dynamic", rope_scaling_factor=4.0, rope_original_max_position=2048)),
    (16, 10000.0, dict(rope_scaling="yarn", rope_scaling_factor=4.0, rope_original_max_position=128)),
    (128, 10000.0, dict(rope_scaling="yarn", rope_scaling_factor=16.0, rope_original_max_position=4096)),
    (64, 10000.0, dict(rope_scaling="yarn", rope_scaling_factor=8.0, rope_original_max_position=2048,
                       rope_beta_fast=16.0, rope_beta_slow=2.0, rope_attention_factor=0.8)),
    (16, 10000.0, dict(rope_scaling="llama3", rope_scaling_factor=8.0, rope_original_max_position=128)),
    (128, 500000.0, dict(rope_scaling="llama3", rope_scaling_factor=8.0, rope_original_max_position=8192)),
    (64, 10000.0, dict(rope_scaling="llama3", rope_scaling_factor=4.0, rope_original_max_position=512,
                       rope_low_freq_factor=2.0, rope_high_freq_factor=8.0)),
]  # fmt: skip


def config_of(head_dim: int, theta: float = 10000.0, **settings) -> ModelConfig:
    return ModelConfig(vocab_size=10, d_model=2 * head_dim, n_heads=2, rope_theta=theta, **settings)


def hf_frequencies(config: ModelConfig, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rope, max_positions = hf_rope_parameters(config)
    hf = transformers.LlamaConfig(
        vocab_size=10,
        hidden_size=config.d_model,
        num_attention_heads=config.n_heads,
        max_position_embeddings=max_positions,
        rope_parameters=dict(rope),
    )
    kind = rope["rope_type"]
    if kind == "default":
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        return LlamaRotaryEmbedding.compute_default_rope_parameters(hf)
    return ROPE_INIT_FUNCTIONS[kind](hf, "cpu", seq_len=seq_len)


def ours(config: ModelConfig, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    return inverse_frequencies(config.head_dim, config.rope_theta, RopeScaling.from_config(config), seq_len)


@pytest.mark.parametrize(("head_dim", "theta", "settings"), PARITY)
def test_inverse_frequencies_and_attention_factor_equal_transformers(head_dim, theta, settings):
    config = config_of(head_dim, theta, **settings)
    lengths = [None]
    if settings["rope_scaling"] == "dynamic":  # below, at and beyond L0
        L0 = settings["rope_original_max_position"]
        lengths += [L0 // 2, L0, L0 + 1, 3 * L0, 8 * L0 + 5]
    for seq_len in lengths:
        (mine, a), (theirs, b) = ours(config, seq_len), hf_frequencies(config, seq_len)
        assert (mine - theirs.double()).abs().max().item() < TOL, seq_len
        assert a == pytest.approx(b, abs=TOL)
        assert mine.shape == (head_dim // 2,)


@pytest.mark.parametrize(("head_dim", "factor"), [(16, 2.0), (64, 4.0), (128, 8.0)])
def test_static_ntk_is_dynamic_ntk_at_the_matching_length_and_exports_as_a_base(head_dim, factor):
    """Dynamic gives b · (f·L/L0 - f + 1)^(D/(D-2)): at L = L0 · (s + f - 1) / f it is static NTK with s."""
    L0, f = 64, 2.0
    ntk = config_of(head_dim, rope_scaling="ntk", rope_scaling_factor=factor)
    dynamic = config_of(
        head_dim, rope_scaling="dynamic", rope_scaling_factor=f, rope_original_max_position=L0
    )
    L = L0 * (factor + f - 1) / f
    assert int(L) == L
    assert (ours(ntk)[0] - hf_frequencies(dynamic, int(L))[0].double()).abs().max().item() < TOL
    assert (ours(ntk)[0] - hf_frequencies(ntk)[0].double()).abs().max().item() < TOL  # exported base
    slowest, fastest = ours(ntk)[0][-1] / ours(config_of(head_dim))[0][-1], ours(ntk)[0][0]
    assert slowest.item() == pytest.approx(1 / factor) and fastest.item() == 1.0


@given(
    factor=st.floats(1.5, 64.0),
    log2_original=st.integers(4, 14),
    head_dim=st.sampled_from([8, 16, 32, 64, 128]),
    kind=st.sampled_from(["yarn", "llama3"]),
)
@settings(max_examples=40)
def test_banded_methods_keep_fast_and_interpolate_slow_frequencies(factor, log2_original, head_dim, kind):
    """Both lie between plain RoPE and position interpolation, monotone from one to the other, and keep
    (interpolate) the dimensions their papers name: YaRN by turns r = L0 / λ within L0 (r > β_fast kept,
    r < β_slow interpolated), Llama 3 by wavelength (λ < L0 / 4 kept, λ > L0 / 1 interpolated)."""
    L0 = 2**log2_original
    config = config_of(head_dim, rope_scaling=kind, rope_scaling_factor=factor, rope_original_max_position=L0)
    plain, scaled = ours(config_of(head_dim))[0], ours(config)[0]
    ratio = scaled / plain  # 1 = kept, 1/s = interpolated
    assert bool((ratio <= 1 + 1e-12).all() and (ratio >= 1 / factor - 1e-12).all())
    assert bool((ratio[1:] <= ratio[:-1] + 1e-12).all())  # slower dimensions are interpolated more
    wavelength = 2 * math.pi / plain
    kept, interpolated = (
        (L0 / wavelength > 32, L0 / wavelength < 1)
        if kind == "yarn"
        else (wavelength < L0 / 4, wavelength > L0)
    )
    assert torch.allclose(ratio[kept], torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(ratio[interpolated], torch.tensor(1 / factor, dtype=torch.float64))


def test_yarn_attention_factor_is_the_papers_temperature():
    config = config_of(16, rope_scaling="yarn", rope_scaling_factor=16.0, rope_original_max_position=64)
    assert ours(config)[1] == pytest.approx(0.1 * math.log(16.0) + 1)  # √(1/t), eq. 22


# --- the model: KV cache == full recomputation, for every type, dynamic past L0 --------------------------------


def tiny_model(settings: dict, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, **settings)
    model = Transformer(config).eval()
    with torch.no_grad():  # larger query/key weights, so a wrong rotation shows in the argmax
        for block in model.blocks:
            block.attn.q.weight.mul_(8)
            block.attn.k.weight.mul_(8)
    return model


@pytest.mark.parametrize("kind", list(SCALINGS))
def test_cached_generation_equals_full_recomputation_past_the_original_length(kind):
    model = tiny_model(SCALINGS[kind])
    prompts = torch.randint(0, 40, (3, 5), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompts, max_new_tokens=27, greedy=True)  # 32 positions: 4x L0 = 8
    full = generate(model, prompts, max_new_tokens=27, greedy=True, use_cache=False)
    assert torch.equal(cached, full)


@pytest.mark.parametrize("kind", list(SCALINGS))
def test_each_cached_step_has_the_logits_of_the_full_pass(kind):
    model = tiny_model(SCALINGS[kind])
    ids = torch.randint(0, 40, (2, 30), generator=torch.Generator().manual_seed(2))
    cache = KVCache(model.config.n_layers)
    steps = [model(ids[:, :6], cache=cache).logits[:, -1]]
    steps += [model(ids[:, t : t + 1], cache=cache).logits[:, -1] for t in range(6, 30)]
    full = [model(ids[:, : t + 1]).logits[:, -1] for t in range(5, 30)]  # each prefix on its own
    assert cache.keys[0].shape == (2, 2, 30, 8)  # the cache holds the 2 key/value heads
    assert max((a - b).abs().max().item() for a, b in zip(steps, full, strict=True)) < 1e-5


def test_dynamic_rotates_each_position_with_the_frequencies_of_its_own_length():
    """Position m gets transformers' dynamic frequencies for seq_len = m + 1 (its cached-generation rotation)."""
    config = config_of(16, **SCALINGS["dynamic"])
    positions = torch.arange(0, 40, dtype=torch.float64)
    angles = Rotary.from_config(config).angles(positions, torch.float64)  # (40, 8)
    for m in [0, 7, 8, 9, 20, 39]:
        expected = m * hf_frequencies(config, m + 1)[0].double()
        assert (angles[m] - expected).abs().max().item() < 40 * TOL


def test_rotating_every_position_at_the_current_length_would_break_the_cache(monkeypatch):
    """The cache tests above can fail: transformers' full-pass rule (every position at b'(L), L the current
    length) makes the hidden states of a prefix depend on what follows, so a cache goes stale (#25104)."""
    model = tiny_model(SCALINGS["dynamic"])
    rope = model.pos

    def current_length_angles(positions, dtype=torch.float32):
        length = torch.full_like(positions, int(positions.max()) + 1, dtype=torch.float64)
        inv_freq = inverse_frequencies(rope.head_dim, rope.theta, rope.scaling, length)[0]  # (T, D/2)
        return positions.to(dtype)[:, None] * inv_freq.to(dtype)

    monkeypatch.setattr(rope, "angles", current_length_angles)
    ids = torch.randint(0, 40, (2, 30), generator=torch.Generator().manual_seed(2))
    cache = KVCache(model.config.n_layers)
    model(ids[:, :29], cache=cache)
    stale = model(ids[:, 29:], cache=cache).logits[:, -1]
    assert (stale - model(ids).logits[:, -1]).abs().max().item() > 1e-5  # the tolerance the cache tests use


# --- bad input: one line each -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rope_scaling": "xpos"}, "unknown rope_scaling 'xpos'; choose one of: None, linear, ntk, dynamic, yarn, llama3"),
        ({"rope_scaling": "linear", "rope_scaling_factor": 1.0}, "rope_scaling='linear' needs rope_scaling_factor > 1, not 1.0"),
        ({"rope_scaling": "yarn", "rope_scaling_factor": 0.5, "rope_original_max_position": 64}, "rope_scaling='yarn' needs rope_scaling_factor > 1"),
        ({"rope_scaling": "ntk", "rope_scaling_factor": 1.0}, "rope_scaling='ntk' needs rope_scaling_factor > 1"),
        ({"rope_scaling": "llama3", "rope_scaling_factor": 1.0, "rope_original_max_position": 64}, "rope_scaling='llama3' needs rope_scaling_factor > 1"),
        ({"rope_scaling": "dynamic", "rope_scaling_factor": 0.5, "rope_original_max_position": 64}, "rope_scaling='dynamic' needs rope_scaling_factor >= 1"),
        ({"rope_scaling": "yarn", "rope_scaling_factor": 4.0}, "rope_scaling='yarn' needs rope_original_max_position"),
        ({"rope_scaling": "dynamic", "rope_scaling_factor": 2.0}, "rope_scaling='dynamic' needs rope_original_max_position"),
        ({"rope_scaling": "linear", "rope_scaling_factor": 2.0, "rope_beta_fast": 8.0}, "rope_beta_fast=8.0 has no effect without rope_scaling='yarn'"),
        ({"rope_original_max_position": 64}, "rope_original_max_position=64 has no effect without rope_scaling='dynamic' or 'yarn' or 'llama3'"),
        ({"rope_scaling": "yarn", "rope_scaling_factor": 4.0, "rope_original_max_position": 64, "rope_beta_slow": 40.0}, "rope_beta_fast=32.0 must be above rope_beta_slow=40.0"),
        ({"rope_scaling": "llama3", "rope_scaling_factor": 4.0, "rope_original_max_position": 64, "rope_low_freq_factor": 4.0}, "rope_high_freq_factor=4.0 must be above rope_low_freq_factor=4.0"),
        ({"positional": "alibi", "rope_scaling": "yarn", "rope_scaling_factor": 4.0}, "rope_scaling='yarn' needs positional='rope'"),
        ({"n_kv_heads": 3}, "n_kv_heads=3 must be None or a positive integer dividing n_heads=4"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(LlmlabError) as e:
        ModelConfig(vocab_size=10, d_model=32, n_heads=4, **settings)
    assert "\n" not in str(e.value) and message in str(e.value), str(e.value)
