"""KV cache and generation: cached steps equal full recomputation for every encoding; sampling filters."""

from __future__ import annotations

import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model import POSITIONAL, KVCache, ModelConfig, Transformer, generate
from llmlab.model.generate import sample_next

NAMES = list(POSITIONAL)


def tiny_model(name: str = "rope", seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    settings = dict(vocab_size=40, d_model=32, n_layers=2, n_heads=4, max_seq_len=64, positional=name)
    model = Transformer(ModelConfig(**(settings | overrides))).eval()
    for p in model.pos.parameters():  # larger positional terms, so a wrong position would show
        p.data.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("name", NAMES)
def test_cached_generation_equals_full_recomputation(name):
    model = tiny_model(name)
    prompts = torch.randint(0, 40, (3, 5), generator=torch.Generator().manual_seed(1))
    cached = generate(model, prompts, max_new_tokens=10, greedy=True)
    full = generate(model, prompts, max_new_tokens=10, greedy=True, use_cache=False)
    assert cached.shape == (3, 15)
    assert torch.equal(cached[:, :5], prompts)
    assert torch.equal(cached, full)


@pytest.mark.parametrize("name", NAMES)
def test_each_cached_step_has_the_logits_of_the_full_pass(name):
    model = tiny_model(name)
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(2))
    full = model(ids).logits
    cache = KVCache(model.config.n_layers)
    chunks = [
        model(ids[:, :4], cache=cache).logits,
        model(ids[:, 4:7], cache=cache).logits,
    ]  # chunked prefill
    chunks += [model(ids[:, t : t + 1], cache=cache).logits for t in range(7, 12)]  # one token at a time
    assert cache.length == 12 and cache.keys[0].shape == (2, 4, 12, 8)
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_cache_remembers_padding(name):
    model = tiny_model(name)
    ids = torch.randint(1, 40, (2, 8), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, 2:4] = 0  # two padded tokens inside the first chunk of row 0
    full = model(ids, attention_mask=mask).logits
    cache = KVCache(model.config.n_layers)
    first = model(ids[:, :5], attention_mask=mask[:, :5], cache=cache).logits
    rest = [model(ids[:, t : t + 1], cache=cache).logits for t in range(5, 8)]  # no mask: all kept
    assert torch.allclose(torch.cat([first, *rest], dim=1), full, atol=1e-5)


@pytest.mark.parametrize("name", ["rope", "alibi", "relative", "learned"])
def test_cache_with_prefix_kv_equals_full_pass(name):
    model = tiny_model(name)
    prefix = [(torch.randn(1, 4, 3, 8), torch.randn(1, 4, 3, 8)) for _ in range(2)]
    prompts = torch.randint(0, 40, (2, 4), generator=torch.Generator().manual_seed(4))
    cached = generate(model, prompts, 6, greedy=True, prefix_kv=prefix)
    full = generate(model, prompts, 6, greedy=True, prefix_kv=prefix, use_cache=False)
    assert torch.equal(cached, full)
    assert torch.allclose(
        model(cached, prefix_kv=prefix).logits[:, :4], model(prompts, prefix_kv=prefix).logits, atol=1e-5
    )


def test_learned_table_overflow_is_caught_before_generating():
    model = tiny_model("learned", max_seq_len=16)
    prompts = torch.zeros(1, 10, dtype=torch.long)
    assert generate(model, prompts, 7, greedy=True).shape == (1, 17)  # 16 positions fed, the last never is
    with pytest.raises(
        LlmlabError, match=r"sequence of 17 positions exceeds the learned table of 16 \(max_seq_len\)"
    ):
        generate(model, prompts, 8, greedy=True)


def test_generate_restores_training_mode_and_checks_arguments():
    model = tiny_model().train()
    generate(model, torch.zeros(1, 3, dtype=torch.long), 2, greedy=True)
    assert model.training
    ids = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(LlmlabError, match="bidirectional encoder"):
        generate(tiny_model(causal=False), ids, 2)
    for kwargs, message in [
        ({"temperature": 0.0}, "temperature=0.0"),
        ({"top_k": 0}, "top_k=0"),
        ({"top_p": 1.5}, "top_p=1.5"),
    ]:
        with pytest.raises(LlmlabError, match=message):
            generate(model, ids, 2, **kwargs)


def test_sampling_is_reproducible_with_a_generator():
    model = tiny_model("alibi")
    prompts = torch.randint(0, 40, (2, 3), generator=torch.Generator().manual_seed(5))
    a = generate(model, prompts, 8, temperature=1.5, generator=torch.Generator().manual_seed(7))
    b = generate(model, prompts, 8, temperature=1.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(generate(model, prompts, 8, top_k=1), generate(model, prompts, 8, greedy=True))


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(2000, 4)
    gen = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, top_k=2, generator=gen).unique().tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.79, generator=gen).unique().tolist()) == {
        0,
        1,
    }  # 0.5 + 0.3 passes 0.79
    assert set(sample_next(logits, top_p=0.81, generator=gen).unique().tolist()) == {0, 1, 2}
    assert set(sample_next(logits, top_p=0.1, generator=gen).unique().tolist()) == {0}  # never empty
    assert set(sample_next(logits, generator=gen).unique().tolist()) == {0, 1, 2, 3}
