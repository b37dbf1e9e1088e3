"""LoRA: equals the base at initialisation, merged == unmerged, unmerge restores the base, peft parity.

Reference: HF PEFT `LoraConfig` over `transformers.BertForSequenceClassification` on the real MiniLM, given
the same A and B matrices and the same classifier head; real SST-2 dev sentences. Tolerances: 1e-5.
"""

from __future__ import annotations

import pytest
import torch

from llmlab.finetuning.classify import encode_texts
from llmlab.finetuning.lora import LoraLinear, apply_lora, lora_layers, merge_lora, unmerge_lora
from llmlab.finetuning.methods import MethodSettings, build_model
from llmlab.model import ModelConfig, Transformer
from tests.finetuning.test_methods import LABELS, sst2_dev

TOL = 1e-5


def tiny_transformer(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(
        ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, positional="learned")
    ).eval()


def randomise_b(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every B a non-zero value, as training would (at initialisation B = 0 and LoRA does nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)


def test_lora_at_initialisation_is_the_base_exactly():
    base, ids = tiny_transformer(), torch.randint(0, 50, (2, 9))
    expected = base(ids).logits
    apply_lora(base, ("q", "k", "v", "o", "fc", "proj"), rank=4, alpha=8.0)
    assert torch.equal(base(ids).logits, expected)
    assert {n for n, p in base.named_parameters() if p.requires_grad} == {
        f"blocks.{i}.{part}.lora_{ab}"
        for i in range(2)
        for part in ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.fc", "mlp.proj")
        for ab in "AB"
    }


def test_merge_equals_unmerged_and_unmerge_restores_the_base():
    base, ids = tiny_transformer(), torch.randint(0, 50, (2, 9))
    weights = {n: p.clone() for n, p in base.named_parameters()}
    apply_lora(base, ("q", "v", "fc"), rank=4, alpha=16.0)
    randomise_b(base)
    unmerged = base(ids).logits
    merge_lora(base)
    assert all(layer.merged for layer in lora_layers(base))
    assert not torch.equal(base.blocks[0].attn.q.weight, weights["blocks.0.attn.q.weight"])
    torch.testing.assert_close(base(ids).logits, unmerged, rtol=0, atol=TOL)
    merge_lora(base)  # idempotent
    unmerge_lora(base)
    for name, w in weights.items():
        torch.testing.assert_close(base.get_parameter(name), w, rtol=0, atol=1e-6)
    torch.testing.assert_close(base(ids).logits, unmerged, rtol=0, atol=TOL)


def test_scaling_and_init_follow_peft():
    layer = LoraLinear(torch.nn.Linear(16, 8), rank=4, alpha=12.0)
    assert layer.scaling == 3.0 and torch.equal(layer.lora_B, torch.zeros(8, 4))
    bound = (1 / 16) ** 0.5  # kaiming_uniform(a=√5) on fan_in 16
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.std() > bound / 3
    with torch.no_grad():
        layer.lora_B.fill_(0.5)
    x = torch.randn(3, 16)
    expected = (
        torch.nn.functional.linear(x, layer.weight, layer.bias) + 3.0 * x @ layer.lora_A.T @ layer.lora_B.T
    )
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.slow
def test_lora_matches_peft_on_minilm(minilm_dir, shared_data):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    transformers.logging.set_verbosity_error()
    settings = MethodSettings(lora_rank=8, lora_alpha=16.0, lora_targets=("q", "v"))
    ours = build_model(minilm_dir, "lora", "classification", LABELS, settings, seed=0).eval()
    randomise_b(ours.base)
    hf = transformers.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2).eval()
    hf.classifier.load_state_dict(ours.head.classifier.state_dict())
    config = peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "value"])
    theirs = peft.get_peft_model(hf, config).eval()
    with torch.no_grad():
        for i, block in enumerate(ours.base.blocks):
            attention = theirs.base_model.model.bert.encoder.layer[i].attention.self
            for ours_name, hf_name in (("q", "query"), ("v", "value")):
                mine, peft_layer = getattr(block.attn, ours_name), getattr(attention, hf_name)
                peft_layer.lora_A["default"].weight.copy_(mine.lora_A)
                peft_layer.lora_B["default"].weight.copy_(mine.lora_B)
    b = encode_texts(ours.tokenizer, sst2_dev(shared_data, 16), None, 128)
    with torch.no_grad():
        expected = theirs(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
        torch.testing.assert_close(
            ours(b.input_ids, b.attention_mask, b.token_type_ids), expected, rtol=0, atol=TOL
        )
        ours.prepare_for_inference()  # merged
        torch.testing.assert_close(
            ours(b.input_ids, b.attention_mask, b.token_type_ids), expected, rtol=0, atol=TOL
        )
    assert expected.std(0).min() > 1e-3  # the adapters and head make the rows differ
