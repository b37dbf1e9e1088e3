"""Llama architecture: parity with transformers' LlamaForCausalLM both ways, every RoPE scaling, GQA, tying.

Reference: `transformers.LlamaForCausalLM` built from a small config with seeded random weights (moved off
their init), saved with `save_pretrained`, offline. Tolerance 1e-5 max abs on every hidden state and the
logits (measured ~1e-6); greedy generation with the cache must give the same tokens. `dynamic` follows
transformers' cached generation (rotary.py): its full pass is compared up to L0 only, and its generation
against transformers' cached `generate` from a prompt within L0.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from llmlab.errors import LlmlabError
from llmlab.model import ModelConfig, Transformer, generate
from llmlab.model.hf_export import convert, to_hf
from llmlab.model.hf_import import from_hf
from llmlab.stdlib_text import demo_corpus
from llmlab.tokenizer.train import train_tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
TOL = 1e-5
L0 = 16  # the "original" length of the scaled configs; test sequences run to 40
HF_ROPES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    "yarn": {"rope_type": "yarn", "rope_theta": 500.0, "factor": 4.0, "original_max_position_embeddings": L0,
             "beta_fast": 8.0, "beta_slow": 1.0},
    "llama3": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "original_max_position_embeddings": L0,
               "low_freq_factor": 1.0, "high_freq_factor": 4.0},
}  # fmt: skip
VARIANTS = {  # (rope, num_key_value_heads, tie_word_embeddings, hidden_act)
    "default-gqa-untied": ("default", 2, False, "silu"),
    "default-mqa-tied": ("default", 1, True, "silu"),
    "linear-mha": ("linear", 4, False, "silu"),
    "dynamic-gqa": ("dynamic", 2, False, "silu"),
    "yarn-gqa-gelu": ("yarn", 2, False, "gelu"),
    "llama3-gqa-tied": ("llama3", 2, True, "silu"),
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer("bpe", demo_corpus()[:3000], 300, workers=1)


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every parameter off its init (unit RMSNorm weights would hide a mapping mistake)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def make_llama(path, tokenizer, variant: str, **overrides):
    rope, kv_heads, tie, act = VARIANTS[variant]
    settings = (
        dict(
            vocab_size=tokenizer.vocab_size,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=kv_heads,
            hidden_act=act,
            rms_norm_eps=1e-6,
            max_position_embeddings=L0 if rope == "dynamic" else 64,
            tie_word_embeddings=tie,
            rope_parameters=dict(HF_ROPES[rope]),
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
        | overrides
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**settings)).eval()
    perturb(model, seed=1)
    model.save_pretrained(path)
    tokenizer.save(path / "tokenizer.json")
    return model


def token_batch(tokenizer, n: int = 2, length: int = 40) -> torch.Tensor:
    ids = [
        tokenizer.encode(" ".join(demo_corpus()[100 + 40 * i : 140 + 40 * i])).ids[:length] for i in range(n)
    ]
    return torch.tensor(ids)  # (n, length)


def hf_greedy(hf, prompts: torch.Tensor, new: int) -> torch.Tensor:
    return hf.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        use_cache=True,
        pad_token_id=0,
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_from_hf_matches_transformers_in_every_layer_and_in_generation(tmp_path, tokenizer, variant):
    hf = make_llama(tmp_path, tokenizer, variant)
    model, ours_tokenizer = from_hf(tmp_path)
    assert ours_tokenizer.fingerprint == tokenizer.fingerprint
    ids = token_batch(tokenizer)
    upto = L0 if VARIANTS[variant][0] == "dynamic" else ids.shape[1]  # see the module docstring
    with torch.no_grad():
        ours = model(ids[:, :upto], output_hidden_states=True)
        theirs = hf(input_ids=ids[:, :upto], output_hidden_states=True)
    diffs = [
        (a - b).abs().max().item() for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True)
    ]
    assert len(diffs) == 4 and max(diffs) < TOL, diffs
    assert (ours.logits - theirs.logits).abs().max().item() < TOL
    prompts = ids[:, :10]
    assert torch.equal(generate(model, prompts, 30, greedy=True), hf_greedy(hf, prompts, 30))


def test_padding_mask_matches_transformers(tmp_path, tokenizer):
    hf = make_llama(tmp_path, tokenizer, "yarn-gqa-gelu")
    model, _ = from_hf(tmp_path)
    ids, mask = token_batch(tokenizer, 3, 30), torch.ones(3, 30, dtype=torch.long)
    mask[1, 20:] = 0  # right padding
    with torch.no_grad():
        diff = (model(ids, attention_mask=mask).logits - hf(input_ids=ids, attention_mask=mask).logits).abs()
    assert diff[mask.bool()].max().item() < TOL


LLMLAB_SCALINGS = {
    "none": {},
    "linear": dict(rope_scaling="linear", rope_scaling_factor=2.0),
    "ntk": dict(rope_scaling="ntk", rope_scaling_factor=4.0),
    "dynamic": dict(rope_scaling="dynamic", rope_scaling_factor=2.0, rope_original_max_position=L0),
    "yarn": dict(rope_scaling="yarn", rope_scaling_factor=4.0, rope_original_max_position=L0,
                 rope_attention_factor=1.2),
    "llama3": dict(rope_scaling="llama3", rope_scaling_factor=4.0, rope_original_max_position=L0,
                   rope_high_freq_factor=8.0),
}  # fmt: skip


def llama_shaped(vocab_size: int, **overrides) -> ModelConfig:
    settings = dict(
        vocab_size=vocab_size,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=80,
        max_seq_len=64,
        positional="rope",
        norm_type="rms",
        gated_mlp=True,
        activation="silu",
        bias=False,
        tie_embeddings=False,
        layer_norm_eps=1e-6,
    )
    return ModelConfig(**(settings | overrides))


@pytest.mark.parametrize("scaling", list(LLMLAB_SCALINGS))
def test_llmlab_llama_shape_loads_in_transformers(tmp_path, tokenizer, scaling):
    config = llama_shaped(tokenizer.vocab_size, **LLMLAB_SCALINGS[scaling])
    torch.manual_seed(0)
    model = Transformer(config).eval()
    perturb(model, seed=2)
    to_hf(model, tokenizer, tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    ids = token_batch(tokenizer)
    upto = L0 if scaling == "dynamic" else ids.shape[1]
    with torch.no_grad():
        diff = (model(ids[:, :upto]).logits - hf(input_ids=ids[:, :upto]).logits).abs().max().item()
    assert diff < TOL
    prompts = ids[:, :8]
    assert torch.equal(generate(model, prompts, 24, greedy=True), hf_greedy(hf, prompts, 24))
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert hf_tokenizer("def f(x): return x")["input_ids"] == tokenizer.encode("def f(x): return x").ids


@pytest.mark.parametrize("variant", ["default-mqa-tied", "yarn-gqa-gelu", "llama3-gqa-tied", "dynamic-gqa"])
def test_hf_to_llmlab_to_hf_is_lossless(tmp_path, tokenizer, variant):
    make_llama(tmp_path / "hf", tokenizer, variant)
    convert(tmp_path / "hf", tmp_path / "ours", "from-hf")
    convert(tmp_path / "ours", tmp_path / "back", "to-hf")
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("hf", "back"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    a, b = (json.loads((tmp_path / d / "config.json").read_text()) for d in ("hf", "back"))
    for key in [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "hidden_act",
        "intermediate_size",
        "rms_norm_eps",
        "tie_word_embeddings",
        "rope_parameters",
    ]:
        assert a[key] == b[key], key


# --- bad input: one line each ---------------------------------------------------------------------------------


def edited_config(tmp_path, tokenizer, **changes) -> None:
    make_llama(tmp_path, tokenizer, "default-gqa-untied")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_key_value_heads": 3}, "n_kv_heads=3 must be None or a positive integer dividing n_heads=4"),
        ({"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}}, "unsupported rope_type 'longrope'"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
         "partial_rotary_factor=0.5"),
        ({"mlp_bias": True}, "attention_bias=False with mlp_bias=True"),
        ({"head_dim": 32}, "head_dim=32 other than hidden_size / num_attention_heads"),
        ({"hidden_act": "tanh"}, "unsupported hidden_act 'tanh'"),
    ],
)  # fmt: skip
def test_import_errors_are_one_line_naming_the_file(tmp_path, tokenizer, changes, message):
    edited_config(tmp_path, tokenizer, **changes)
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path / "config.json") in str(e.value)
    assert message in str(e.value), str(e.value)


def test_old_rope_scaling_format_is_read(tmp_path, tokenizer):
    """transformers 4.x wrote `rope_theta` + `rope_scaling` (with `type`); both formats give the same model."""
    edited_config(
        tmp_path,
        tokenizer,
        rope_parameters=None,
        rope_theta=500.0,
        rope_scaling={"type": "linear", "factor": 3.0},
    )
    config = from_hf(tmp_path)[0].config
    assert (config.rope_theta, config.rope_scaling, config.rope_scaling_factor) == (500.0, "linear", 3.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rope_layout": "interleaved"}, "rope_layout='interleaved' cannot be exported: a causal RoPE model exports as Llama"),
        ({"norm_type": "layer"}, "norm_type='layer' cannot be exported"),
        ({"gated_mlp": False}, "gated_mlp=False cannot be exported"),
        ({"positional": "learned", "bias": True}, "n_kv_heads=2 cannot be exported: a causal model exports as GPT-2"),
    ],
)  # fmt: skip
def test_export_refuses_what_llama_cannot_hold(tmp_path, tokenizer, overrides, message):
    model = Transformer(llama_shaped(tokenizer.vocab_size, **overrides))
    with pytest.raises(LlmlabError) as e:
        to_hf(model, tokenizer, tmp_path / "out")
    assert "\n" not in str(e.value) and message in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()
