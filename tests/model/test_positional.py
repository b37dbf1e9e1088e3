"""Positional encodings: values from the papers, HF parity for T5 buckets and ALiBi slopes, invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.errors import LlmlabError
from llmlab.model import POSITIONAL, ModelConfig, PositionalEncoding, Transformer, build_positional
from llmlab.model.positional.absolute import Sinusoidal, sinusoidal_table
from llmlab.model.positional.alibi import ALiBi, alibi_slopes
from llmlab.model.positional.relative import ShawLayer, relative_position_bucket, shaw_relative_ids
from llmlab.model.positional.rope_scaling import RopeScaling
from llmlab.model.positional.rotary import Rotary
from llmlab.model.transformer import AttentionContext

NAMES = ["none", "sinusoidal", "learned", "relative", "t5", "rope", "alibi"]


def test_registry_holds_the_seven_encodings():
    assert sorted(POSITIONAL) == sorted(NAMES)
    for name in NAMES:
        config = ModelConfig(vocab_size=10, d_model=16, n_layers=2, n_heads=2, positional=name)
        assert isinstance(build_positional(config), PositionalEncoding)


def test_base_hooks_do_nothing():
    pe, x, q = PositionalEncoding(), torch.randn(2, 3, 8), torch.randn(2, 2, 3, 4)
    pos = torch.arange(3)
    assert pe.embed(x, pos) is x
    assert pe.rotate(q, q, pos, pos) == (q, q)
    assert pe.bias(q, pos, pos) is None and pe.values(q, pos, pos) is None
    assert pe.for_layer(1) is pe and not pe.needs_probs and pe.max_positions is None


# --- sinusoidal -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [16, 7])
def test_sinusoidal_equals_the_papers_formula(dim):
    positions = range(0, 200, 3)
    table = sinusoidal_table(torch.tensor(list(positions)), dim, torch.float64)
    for row, pos in enumerate(positions):
        for c in range(dim):
            angle = pos / 10000 ** ((c - c % 2) / dim)  # channels 2i and 2i + 1 share 10000^(2i/d)
            expected = math.sin(angle) if c % 2 == 0 else math.cos(angle)
            assert table[row, c].item() == pytest.approx(expected, abs=1e-12)


def test_sinusoidal_embed_scales_embeddings_and_adds_the_table_at_any_length():
    pe = Sinusoidal(16)
    positions = torch.arange(5000, 5004)  # far beyond any max_seq_len: no table, no limit
    x = torch.randn(2, 4, 16)
    out = pe.embed(x, positions)
    assert torch.allclose(out[1], 4.0 * x[1] + sinusoidal_table(positions, 16), atol=1e-5)  # √16 = 4


# --- RoPE ---------------------------------------------------------------------------------------------------


def _dot_after_rotation(rope: Rotary, q, k, m, n) -> float:
    qr, kr = rope.rotate(q, k, torch.tensor([m]), torch.tensor([n]))
    return (qr * kr).sum().item()


@pytest.mark.parametrize("layout", ["half", "interleaved"])
@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 4000), n=st.integers(0, 4000), shift=st.integers(0, 4000))
def test_rope_dot_product_depends_only_on_the_offset(layout, m, n, shift):
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 1, 1, 16, generator=gen, dtype=torch.float64) for _ in range(2))
    rope = Rotary(16, layout=layout)
    here, there = _dot_after_rotation(rope, q, k, m, n), _dot_after_rotation(rope, q, k, m + shift, n + shift)
    assert here == pytest.approx(there, abs=1e-9)


def test_rope_dot_product_changes_with_the_offset_and_keeps_norms():
    q, k = torch.randn(2, 1, 1, 16, dtype=torch.float64)
    rope = Rotary(16)
    dots = {round(_dot_after_rotation(rope, q[None], k[None], 10, 10 - d), 6) for d in range(8)}
    assert len(dots) == 8
    qr, _ = rope.rotate(q[None], k[None], torch.tensor([123]), torch.tensor([0]))
    assert qr.norm().item() == pytest.approx(q.norm().item())


def test_rope_layouts_agree_under_the_channel_permutation():
    D = 16
    x = torch.randn(2, 3, 5, D, dtype=torch.float64)
    pos = torch.arange(7, 12)
    perm = torch.cat(
        [torch.arange(0, D, 2), torch.arange(1, D, 2)]
    )  # interleaved pair (2i, 2i+1) -> (i, i+D/2)
    half, _ = Rotary(D, layout="half").rotate(x[..., perm], x[..., perm], pos, pos)
    interleaved, _ = Rotary(D, layout="interleaved").rotate(x, x, pos, pos)
    assert torch.allclose(half, interleaved[..., perm], atol=1e-12)


def test_rope_half_layout_matches_the_rotate_half_formula():
    D, theta = 8, 10000.0
    x, pos = torch.randn(1, 1, 4, D, dtype=torch.float64), torch.arange(4)
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    freqs = torch.cat([pos[:, None] * inv_freq] * 2, dim=-1)  # (T, D) as HF Llama builds cos/sin
    rotate_half = torch.cat([-x[..., D // 2 :], x[..., : D // 2]], dim=-1)
    expected = x * freqs.cos() + rotate_half * freqs.sin()
    assert torch.allclose(Rotary(D).rotate(x, x, pos, pos)[0], expected, atol=1e-12)


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rope_linear_scaling_divides_positions_by_the_factor(layout):
    x, pos = torch.randn(2, 2, 6, 16, dtype=torch.float64), torch.arange(100, 106)
    scaled, _ = Rotary(16, layout=layout, scaling=RopeScaling("linear", 4.0)).rotate(x, x, pos, pos)
    plain, _ = Rotary(16, layout=layout).rotate(x, x, pos / 4, pos / 4)
    assert torch.allclose(scaled, plain, atol=1e-12)


def test_rope_ntk_scaling_changes_the_base_and_stretches_the_slowest_frequency():
    D, s = 16, 8.0
    ntk = Rotary(D, theta=10000.0, scaling=RopeScaling("ntk", s))
    base = 10000.0 * s ** (D / (D - 2))
    assert torch.allclose(ntk.inv_freq, base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D))
    pos = torch.tensor([1000.0], dtype=torch.float64)
    plain_angles = Rotary(D).angles(pos, torch.float64)[0]
    ntk_angles = ntk.angles(pos, torch.float64)[0]
    assert ntk_angles[0].item() == pytest.approx(plain_angles[0].item())  # fastest pair unchanged
    assert ntk_angles[-1].item() == pytest.approx(plain_angles[-1].item() / s)  # slowest: position / s


# --- ALiBi --------------------------------------------------------------------------------------------------


def test_alibi_slopes_for_eight_heads_are_the_papers():
    assert alibi_slopes(8) == pytest.approx([1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256])


def test_alibi_slopes_for_twelve_heads_interpolate_as_the_paper():
    # the 8 slopes of 8 heads, then slopes 1, 3, 5, 7 (every other one) of the 16-head sequence 2^(-k/2)
    expected = [2**-k for k in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    assert alibi_slopes(12) == pytest.approx(expected)


@pytest.mark.parametrize("n_heads", [1, 2, 3, 5, 6, 8, 12, 16, 20, 24])
def test_alibi_slopes_equal_hf_bloom(n_heads):
    bloom = pytest.importorskip("transformers.models.bloom.modeling_bloom")
    expected = bloom._get_alibi_slopes(n_heads, torch.device("cpu")).tolist()
    assert alibi_slopes(n_heads) == pytest.approx(expected, rel=1e-6)


def test_alibi_bias_is_linear_in_distance_causal_and_symmetric():
    q_pos, k_pos, q = torch.arange(3, 6), torch.arange(6), torch.zeros(1, 4, 3, 8)
    bias = ALiBi(4).bias(q, q_pos, k_pos)[0]  # (H, Tq, Tk)
    for h, m in enumerate(alibi_slopes(4)):
        for a, i in enumerate(q_pos.tolist()):
            for j in range(6):
                if j <= i:  # the paper's causal form on every key a causal query sees
                    assert bias[h, a, j].item() == pytest.approx(-m * (i - j))
                assert bias[h, a, j].item() == pytest.approx(-m * abs(i - j))  # symmetric: encoder


# --- T5 and Shaw --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 20), (8, 64), (64, 100)])
def test_t5_buckets_equal_hf(bidirectional, num_buckets, max_distance):
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    rel = torch.arange(-400, 401)[None, :] + torch.tensor([0, 3])[:, None]  # (2, 801)
    expected = t5.T5Attention._relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    assert torch.equal(relative_position_bucket(rel, bidirectional, num_buckets, max_distance), expected)


def test_shaw_distances_are_clipped_at_k():
    k, q_pos, k_pos = 3, torch.arange(20), torch.arange(20)
    ids = shaw_relative_ids(q_pos, k_pos, k)
    for i in range(20):
        for j in range(20):
            assert ids[i, j].item() == max(-k, min(k, j - i)) + k
    assert ids.min().item() == 0 and ids.max().item() == 2 * k


def test_shaw_bias_and_values_beyond_k_equal_those_at_k():
    layer = ShawLayer(head_dim=8, max_distance=3)
    q, probs = torch.randn(1, 2, 1, 8), torch.ones(1, 2, 1, 1)

    def terms_at(distance):  # (bias, values) for one query at 20 and one key at 20 + distance
        q_pos, k_pos = torch.tensor([20]), torch.tensor([20 + distance])
        return layer.bias(q, q_pos, k_pos), layer.values(probs, q_pos, k_pos)

    for far, edge in [(-10, -3), (10, 3)]:
        assert all(torch.equal(a, b) for a, b in zip(terms_at(far), terms_at(edge), strict=True))
    assert not torch.equal(terms_at(3)[0], terms_at(-3)[0])


def test_shaw_attention_follows_equations_3_and_4():
    torch.manual_seed(0)
    k_max, T, H, D = 2, 6, 2, 4
    config = ModelConfig(
        vocab_size=10,
        d_model=H * D,
        n_layers=1,
        n_heads=H,
        positional="relative",
        relative_max_distance=k_max,
        causal=False,
    )
    model = Transformer(config).eval()
    layer, attn = model.pos.for_layer(0), model.blocks[0].attn
    for p in layer.parameters():
        p.data.normal_()
    x = torch.randn(1, T, H * D)
    with torch.no_grad():
        q, k, v = (proj(x)[0].view(T, H, D) for proj in (attn.q, attn.k, attn.v))
        z = torch.zeros(T, H, D)
        for h in range(H):
            for i in range(T):
                rows = [max(-k_max, min(k_max, j - i)) + k_max for j in range(T)]  # clip(j - i, -k, k)
                e = torch.stack(
                    [q[i, h] @ (k[j, h] + layer.rel_k.weight[rows[j]]) / math.sqrt(D) for j in range(T)]
                )
                p = e.softmax(0)
                z[i, h] = sum(p[j] * (v[j, h] + layer.rel_v.weight[rows[j]]) for j in range(T))
        expected = attn.o(z.reshape(1, T, H * D))
        positions = torch.arange(T)
        ours = attn(x, layer, AttentionContext(positions, positions, None, False))
    assert torch.allclose(ours, expected, atol=1e-5)


def test_shaw_is_per_layer_and_t5_is_shared():
    config = ModelConfig(vocab_size=10, d_model=16, n_layers=3, n_heads=2, positional="relative")
    shaw = build_positional(config)
    assert len({id(shaw.for_layer(i)) for i in range(3)}) == 3
    t5 = build_positional(ModelConfig(vocab_size=10, d_model=16, n_layers=3, n_heads=2, positional="t5"))
    assert all(t5.for_layer(i) is t5 for i in range(3))


# --- the model as a whole -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_only_none_is_permutation_equivariant(name):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, positional=name, causal=False)
    model = Transformer(config).eval()
    ids, perm = torch.randint(0, 50, (2, 9)), torch.randperm(9)
    permuted_output = model(ids).last_hidden_state[:, perm]
    output_of_permuted = model(ids[:, perm]).last_hidden_state
    difference = (permuted_output - output_of_permuted).abs().max().item()
    if name == "none":
        assert difference < 1e-5
    else:
        assert difference > 1e-3


def test_learned_table_overflow_is_a_clear_error():
    model = Transformer(
        ModelConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, positional="learned", max_seq_len=512)
    )
    model(torch.zeros(1, 512, dtype=torch.long))  # exactly the table: fine
    message = "sequence of 600 positions exceeds the learned table of 512 (max_seq_len)"
    with pytest.raises(LlmlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model(torch.zeros(1, 600, dtype=torch.long))


@pytest.mark.parametrize("name", ["sinusoidal", "relative", "t5", "rope", "alibi", "none"])
def test_other_encodings_run_past_max_seq_len(name):
    config = ModelConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, positional=name, max_seq_len=8)
    assert Transformer(config)(torch.zeros(1, 20, dtype=torch.long)).logits.shape == (1, 20, 10)
