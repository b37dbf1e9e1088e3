"""Prefix tuning: parity with HF PEFT on GPT-2, with BERT attention by hand on MiniLM; fold; P-tuning v2.

References:
- GPT-2 (a seeded small random `GPT2LMHeadModel`, imported with `from_hf`): peft `PrefixTuningConfig` with the
  MLP, given our prefix encoder's weights; logits within 1e-4 at every real token. peft hands the prefix to HF
  as a KV cache, which shifts the tokens' positions by P (and peft adds P to explicit `position_ids`); llmlab's
  prefixes have no position, so the test passes position_ids = arange(T) - P to compare like with like.
- MiniLM: peft 0.21 refuses prefix tuning on BertForSequenceClassification ("Model does not support past key
  values"), so BERT's attention is computed here by hand with transformers' own BertLayer submodules, the
  prefix keys/values concatenated in front of each layer's; hidden states within 1e-4 at the real tokens.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmlab.finetuning.classify import encode_texts
from llmlab.finetuning.methods import MethodSettings, build_model
from tests.finetuning import test_methods
from tests.finetuning.test_methods import LABELS, logits_of, sst2_dev

tiny_gpt2 = test_methods.tiny_gpt2  # the shared fixture

TOL = 1e-4


def bert_with_prefix(bert, ids, mask, types, prefix_kv) -> torch.Tensor:
    """BertModel's last hidden state (B, T, C) with (B|1, H, P, D) keys/values prepended in every layer."""
    x = bert.embeddings(input_ids=ids, token_type_ids=types)  # (B, T, C)
    B, T, C = x.shape
    for layer, (pk, pv) in zip(bert.encoder.layer, prefix_kv, strict=True):
        attn = layer.attention.self
        H = attn.num_attention_heads
        q, k, v = (lin(x).view(B, T, H, C // H).transpose(1, 2) for lin in (attn.query, attn.key, attn.value))
        k = torch.cat([pk.expand(B, -1, -1, -1), k], dim=2)  # (B, H, P + T, D)
        v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
        keep = torch.cat([torch.ones(B, pk.shape[2]), mask.float()], dim=1)[
            :, None, None, :
        ]  # (B, 1, 1, P + T)
        scores = q @ k.transpose(-1, -2) / math.sqrt(C // H) + (1 - keep) * -1e9
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        a = layer.attention.output(context, x)
        x = layer.output(layer.intermediate(a), a)
    return x


@pytest.mark.slow
def test_prefix_tuning_matches_peft_on_gpt2(tiny_gpt2, shared_data):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    transformers.logging.set_verbosity_error()
    settings = MethodSettings(num_virtual_tokens=5, prefix_hidden=16)
    ours = build_model(tiny_gpt2, "prefix", "lm", [], settings, seed=0).eval()
    hf = transformers.GPT2LMHeadModel.from_pretrained(tiny_gpt2).eval()
    config = peft.PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=5, prefix_projection=True, encoder_hidden_size=16
    )
    theirs = peft.get_peft_model(hf, config).eval()
    theirs.prompt_encoder["default"].load_state_dict(ours.prefix.state_dict())
    b = encode_texts(ours.tokenizer, sst2_dev(shared_data, 8), None, 64)
    T = b.input_ids.shape[1]
    with torch.no_grad():
        position_ids = (torch.arange(T) - 5).expand(8, -1)  # peft adds P back
        expected = theirs(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=position_ids)
        got = ours(b.input_ids, b.attention_mask)
        plain = hf(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
    keep = b.attention_mask.bool()
    torch.testing.assert_close(got[keep], expected.logits[keep], rtol=0, atol=TOL)
    assert (got[keep] - plain[keep]).abs().max() > 1e-2  # the prefix does change the model


@pytest.mark.slow
def test_prefix_matches_bert_attention_by_hand_on_minilm(minilm_dir, shared_data):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    settings = MethodSettings(num_virtual_tokens=6, prefix_hidden=32)
    ours = build_model(minilm_dir, "prefix", "classification", LABELS, settings, seed=0).eval()
    bert = transformers.BertModel.from_pretrained(minilm_dir, add_pooling_layer=False).eval()
    b = encode_texts(ours.tokenizer, sst2_dev(shared_data, 8), None, 128)
    with torch.no_grad():
        prefix_kv = ours.prefix()
        expected = bert_with_prefix(bert, b.input_ids, b.attention_mask, b.token_type_ids, prefix_kv)
        got = ours.base(
            b.input_ids, b.attention_mask, b.token_type_ids, prefix_kv=prefix_kv
        ).last_hidden_state
        torch.testing.assert_close(
            ours(b.input_ids, b.attention_mask, b.token_type_ids), ours.head(expected, b.attention_mask)
        )
    keep = b.attention_mask.bool()
    torch.testing.assert_close(got[keep], expected[keep], rtol=0, atol=TOL)


def test_fold_keeps_the_logits_and_drops_the_mlp(tiny_gpt2):
    settings = MethodSettings(num_virtual_tokens=4, prefix_hidden=16)
    model = build_model(tiny_gpt2, "prefix", "classification", LABELS, settings).eval()
    texts = ["a fine film", "not good at all , sadly"]
    with torch.no_grad():
        before = logits_of(model, texts)
        model.prefix.fold()
        after = logits_of(model, texts)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert model.prefix.transform is None
    assert model.prefix.embedding.weight.shape == (4, 2 * 2 * 32)  # (P, L·2·C)


def test_p_tuning_v2_and_the_prefix_layout(tiny_gpt2):
    settings = MethodSettings(num_virtual_tokens=3, prefix_projection=False)
    model = build_model(tiny_gpt2, "prefix", "classification", LABELS, settings)
    assert {n for n, _ in model.prefix.named_parameters()} == {"embedding.weight"}
    table = model.prefix.embedding.weight  # (P, L·2·C), as peft: layer i's keys, then its values
    kv = model.prefix()
    assert len(kv) == 2 and kv[0][0].shape == (1, 4, 3, 8)
    layer1_values = table.view(3, 4, 4, 8)[:, 3].permute(1, 0, 2)  # (H, P, D)
    assert torch.equal(kv[1][1][0], layer1_values)
    logits_of(model, ["a fine film"]).sum().backward()
    assert table.grad is not None and table.grad.abs().sum() > 0
