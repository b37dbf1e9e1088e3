"""The Transformer and its config: validation, attention against an explicit-softmax reference, masks, shapes."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from llmlab.errors import LlmlabError
from llmlab.model import POSITIONAL, KVCache, ModelConfig, Transformer
from llmlab.model.config import ACTIVATIONS
from llmlab.model.mlp import ACTIVATIONS as ACTIVATION_MODULES
from llmlab.model.transformer import AttentionContext, build_mask

NAMES = list(POSITIONAL)


def tiny(**overrides) -> ModelConfig:
    settings = dict(vocab_size=40, d_model=32, n_layers=2, n_heads=4, max_seq_len=64) | overrides
    return ModelConfig(**settings)


# --- config -------------------------------------------------------------------------------------------------


def test_unknown_encoding_lists_the_choices():
    with pytest.raises(
        LlmlabError,
        match="unknown positional 'xpos'; choose one of: none, sinusoidal, learned, relative, t5, rope, alibi",
    ):
        ModelConfig(vocab_size=10, positional="xpos")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, "d_model=30 must be divisible by n_heads=4"),
        ({"n_layers": 0}, "n_layers=0 must be a positive integer"),
        ({"d_model": "256"}, "d_model='256' must be a positive integer"),
        ({"norm": "sandwich"}, "unknown norm 'sandwich'"),
        ({"activation": "swiglu"}, "unknown activation 'swiglu'"),
        ({"dropout": 1.0}, r"dropout=1.0 must be a number in \[0, 1\)"),
        ({"rope_layout": "pairs"}, "unknown rope_layout 'pairs'"),
        ({"positional": "alibi", "rope_scaling": "linear"}, "rope_scaling='linear' needs positional='rope'"),
        ({"rope_scaling_factor": 2.0}, "rope_scaling_factor=2.0 has no effect without rope_scaling"),
        ({"d_model": 12, "n_heads": 4}, "rope needs an even head size of at least 4"),
        ({"pad_token_id": 10}, "pad_token_id=10 must be None or a token id below vocab_size=10"),
        ({"causal": 1}, "causal=1 must be true or false"),
        ({"t5_max_distance": 8}, "t5_max_distance=8 must be an integer above t5_num_buckets / 2"),
    ],
)
def test_invalid_settings_are_named(overrides, message):
    with pytest.raises(LlmlabError, match=message):
        ModelConfig(vocab_size=10, **overrides)


def test_config_round_trips_through_json(tmp_path):
    config = tiny(positional="t5", causal=False, d_ff=50, tokenizer_fingerprint="abc")
    path = tmp_path / "config.json"
    config.save(path)
    assert ModelConfig.load(path) == config
    assert ModelConfig.from_dict(json.loads(path.read_text())) == config
    assert config.ff_dim == 50 and tiny().ff_dim == 128 and tiny().d_ff is None


def test_unknown_keys_are_named_with_their_source(tmp_path):
    with pytest.raises(LlmlabError, match="run.json: unknown model config keys: dim, heads"):
        ModelConfig.from_dict({"vocab_size": 10, "heads": 4, "dim": 8}, source="run.json")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"vocab_size": 10, "positional": "nope"}))
    with pytest.raises(LlmlabError, match=r"config\.json: model config: unknown positional 'nope'"):
        ModelConfig.load(path)
    with pytest.raises(LlmlabError, match="missing vocab_size"):
        ModelConfig.from_dict({"d_model": 8})


def test_every_activation_name_builds_a_module():
    assert set(ACTIVATIONS) == set(ACTIVATION_MODULES)
    x = torch.linspace(-3, 3, 7)
    outputs = {name: ACTIVATION_MODULES[name]()(x) for name in ACTIVATIONS}
    assert not torch.equal(outputs["gelu"], outputs["gelu_tanh"])
    assert torch.allclose(outputs["gelu_tanh"], F.gelu(x, approximate="tanh"))


# --- attention: SDPA with bias equals an explicit softmax ---------------------------------------------------


def reference_attention(attn, pos, x, q_pos, k_pos, keep, past_kv=None, prefix=None):
    """softmax(q·k/√D + bias, hidden keys at -inf) v (+ Shaw values), written out independently."""
    B, T, C = x.shape
    H = attn.n_heads
    D = C // H

    def heads(t):
        return t.view(B, T, H, D).transpose(1, 2)

    q, k, v = heads(attn.q(x)), heads(attn.k(x)), heads(attn.v(x))
    q, k = pos.rotate(q, k, q_pos, q_pos)
    if past_kv is not None:
        k, v = torch.cat([past_kv[0], k], 2), torch.cat([past_kv[1], v], 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)
    bias = pos.bias(q, q_pos, k_pos)
    if bias is not None:
        scores = scores + bias
    n_prefix = 0
    if prefix is not None:
        n_prefix = prefix[0].shape[2]
        scores = torch.cat([q @ prefix[0].transpose(-2, -1) / math.sqrt(D), scores], dim=-1)
        k, v = torch.cat([prefix[0], k], 2), torch.cat([prefix[1], v], 2)
        keep = torch.cat([torch.ones(*keep.shape[:-1], n_prefix, dtype=torch.bool), keep], dim=-1)
    probs = scores.masked_fill(~keep, float("-inf")).softmax(-1)
    y = probs @ v
    extra = pos.values(probs[..., n_prefix:], q_pos, k_pos)
    if extra is not None:
        y = y + extra
    return attn.o(y.transpose(1, 2).reshape(B, T, C))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("causal", [True, False])
def test_attention_equals_explicit_softmax_reference(name, causal):
    torch.manual_seed(0)
    model = Transformer(tiny(positional=name, causal=causal)).eval()
    for p in model.pos.parameters():  # make positional terms large enough to matter
        p.data.normal_(0, 1)
    attn, pos = model.blocks[0].attn, model.pos.for_layer(0)
    B, L, T, P, H, D = 2, 3, 5, 2, 4, 8
    x = torch.randn(B, T, 32)
    past_kv = (torch.randn(B, H, L, D), torch.randn(B, H, L, D))
    prefix = (torch.randn(B, H, P, D), torch.randn(B, H, P, D))
    key_mask = torch.ones(B, L + T, dtype=torch.long)
    key_mask[1, :2] = 0  # row 1: two padded cached tokens
    q_pos, k_pos = torch.arange(L, L + T), torch.arange(L + T)
    keep = key_mask.bool()[:, None, None, :].expand(B, 1, T, L + T)
    if causal:
        keep = keep & torch.tensor([[j <= i for j in range(L + T)] for i in range(L, L + T)])
    cache = KVCache(1)
    cache.append(0, *past_kv)
    mask = build_mask(q_pos, k_pos, P, key_mask, causal, torch.float32)
    ctx = AttentionContext(q_pos, k_pos, mask, plain_causal=False)
    ours = attn(x, pos, ctx, prefix=prefix, cache=cache, layer=0)
    expected = reference_attention(attn, pos, x, q_pos, k_pos, keep, past_kv, prefix)
    assert torch.allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_plain_causal_pass_equals_reference(name):
    torch.manual_seed(1)
    model = Transformer(tiny(positional=name)).eval()
    attn, pos = model.blocks[1].attn, model.pos.for_layer(1)
    x, T = torch.randn(2, 6, 32), 6
    q_pos = torch.arange(T)
    ctx = AttentionContext(q_pos, q_pos, build_mask(q_pos, q_pos, 0, None, True, torch.float32), True)
    keep = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None]
    assert torch.allclose(attn(x, pos, ctx), reference_attention(attn, pos, x, q_pos, q_pos, keep), atol=1e-5)


# --- the model ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_causal_model_does_not_look_ahead(name):
    torch.manual_seed(0)
    model = Transformer(tiny(positional=name)).eval()
    ids = torch.randint(0, 40, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 40
    a, b = model(ids).logits, model(changed).logits
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5)
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("causal", [True, False])
def test_right_padding_leaves_real_tokens_unchanged(name, causal):
    torch.manual_seed(0)
    model = Transformer(tiny(positional=name, causal=causal)).eval()
    ids = torch.randint(0, 40, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    alone = model(ids).last_hidden_state
    with_padding = model(padded, attention_mask=mask).last_hidden_state[:, :6]
    assert torch.allclose(alone, with_padding, atol=1e-5)


def test_prefix_keys_are_seen_by_every_query():
    torch.manual_seed(0)
    model = Transformer(tiny(positional="rope")).eval()
    ids = torch.randint(0, 40, (2, 5))
    prefix = [(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8)) for _ in range(2)]
    other = [(k, v + 1.0) for k, v in prefix]
    a, b = model(ids, prefix_kv=prefix).logits, model(ids, prefix_kv=other).logits
    assert (a - b).abs().amax(dim=-1).min() > 1e-3  # every position, including the first, changed
    with pytest.raises(LlmlabError, match="prefix_kv has 1 entries; the model has 2 layers"):
        model(ids, prefix_kv=prefix[:1])


def test_hidden_states_follow_hf_convention():
    model = Transformer(tiny(positional="learned")).eval()
    ids = torch.randint(0, 40, (2, 5))
    out = model(ids, output_hidden_states=True)
    assert len(out.hidden_states) == 3  # embeddings, block 0, block 1 after ln_f
    assert torch.equal(out.hidden_states[0], model.tok_emb(ids) + model.pos.table.weight[:5])
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert torch.allclose(out.logits, out.last_hidden_state @ model.tok_emb.weight.T, atol=1e-6)


def test_inputs_embeds_equal_input_ids():
    model = Transformer(tiny()).eval()
    ids = torch.randint(0, 40, (2, 5))
    assert torch.allclose(model(ids).logits, model(inputs_embeds=model.tok_emb(ids)).logits, atol=1e-6)
    with pytest.raises(LlmlabError, match="exactly one of input_ids and inputs_embeds"):
        model(ids, inputs_embeds=model.tok_emb(ids))
    with pytest.raises(LlmlabError, match=r"attention_mask has shape \(2, 4\); expected \(2, 5\)"):
        model(ids, attention_mask=torch.ones(2, 4))


def test_tied_embeddings_and_parameter_count():
    tied, untied = Transformer(tiny()), Transformer(tiny(tie_embeddings=False))
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == 40 * 32
    for p in tied.blocks.parameters():
        p.requires_grad_(False)
    assert tied.num_parameters(trainable_only=True) == tied.tok_emb.weight.numel() + sum(
        p.numel() for p in tied.ln_f.parameters()
    )


def test_bert_like_encoder():
    config = tiny(
        causal=False,
        norm="post",
        embedding_norm=True,
        final_norm=False,
        type_vocab_size=2,
        positional="learned",
        tie_embeddings=False,
        activation="gelu",
        layer_norm_eps=1e-12,
    )
    model = Transformer(config).eval()
    assert model.lm_head is None and model.ln_f is None
    ids = torch.randint(0, 40, (2, 6))
    out = model(ids, token_type_ids=torch.tensor([[0, 0, 0, 1, 1, 1]] * 2))
    assert out.logits is None and out.last_hidden_state.shape == (2, 6, 32)
    assert not torch.allclose(out.last_hidden_state, model(ids).last_hidden_state)
    with pytest.raises(LlmlabError, match="type_vocab_size=0"):
        Transformer(tiny())(ids, token_type_ids=torch.zeros_like(ids))


def test_module_names_map_onto_hf():
    model = Transformer(tiny(positional="learned", type_vocab_size=2, embedding_norm=True))
    names = set(dict(model.named_parameters()))
    expected = {"tok_emb.weight", "pos.table.weight", "type_emb.weight", "emb_norm.weight", "ln_f.weight"}
    expected |= {f"blocks.1.attn.{p}.weight" for p in "qkvo"} | {
        "blocks.1.mlp.fc.weight",
        "blocks.1.mlp.proj.bias",
    }
    expected |= {"blocks.0.ln1.weight", "blocks.0.ln2.bias"}
    assert expected <= names


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_overfits_a_repeated_sequence(name):
    torch.manual_seed(0)
    model = Transformer(tiny(positional=name, d_model=32, n_layers=2, n_heads=2))
    ids = torch.tensor([[3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32] * 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits = model(ids[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, 40), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
