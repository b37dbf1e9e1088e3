"""Prompt tuning: parity with HF PEFT on MiniLM, the three initialisations, the frozen model.

Reference: peft `PromptTuningConfig(task_type="SEQ_CLS")` over `transformers.BertForSequenceClassification`
built from the same MiniLM folder, given the same virtual-token tensor and classifier head, on real SST-2 dev
sentences (padded batches, token type ids passed); logits within 1e-4. The pooled position is the first
virtual token on both sides (peft prepends the prompt before [CLS]).
"""

from __future__ import annotations

import pytest
import torch

from llmlab.finetuning.classify import encode_texts
from llmlab.finetuning.methods import MethodSettings, build_model
from tests.finetuning import test_methods
from tests.finetuning.test_methods import LABELS, logits_of, sst2_dev

tiny_bert = test_methods.tiny_bert  # the shared fixture

TOL = 1e-4
INIT_TEXT = "Classify the sentiment of this movie review"


@pytest.mark.slow
def test_prompt_tuning_matches_peft_on_minilm(minilm_dir, shared_data):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    transformers.logging.set_verbosity_error()
    ours = build_model(minilm_dir, "prompt", "classification", LABELS, MethodSettings(num_virtual_tokens=8))
    ours.eval()
    with torch.no_grad():  # a prompt unlike any initial one, as after training
        ours.prompt.embedding.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    hf = transformers.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2).eval()
    hf.classifier.load_state_dict(ours.head.classifier.state_dict())
    config = peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=8)
    theirs = peft.get_peft_model(hf, config).eval()
    theirs.prompt_encoder["default"].embedding.load_state_dict(ours.prompt.embedding.state_dict())
    b = encode_texts(ours.tokenizer, sst2_dev(shared_data, 16), None, 128)
    with torch.no_grad():
        expected = theirs(
            input_ids=b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids
        )
        got = ours(b.input_ids, b.attention_mask, b.token_type_ids)
    torch.testing.assert_close(got, expected.logits, rtol=0, atol=TOL)
    assert expected.logits.std(0).min() > 1e-4  # the sentences matter, not only the prompt


@pytest.mark.slow
def test_text_init_matches_peft(minilm_dir):
    pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    from peft.tuners.prompt_tuning.model import PromptEmbedding

    for n in (5, 20):  # the text's tokens cut, or repeated
        settings = MethodSettings(num_virtual_tokens=n, prompt_init="text", prompt_init_text=INIT_TEXT)
        ours = build_model(minilm_dir, "prompt", "classification", LABELS, settings)
        config = peft.PromptTuningConfig(
            task_type="SEQ_CLS",
            num_virtual_tokens=n,
            token_dim=384,
            num_transformer_submodules=1,
            prompt_tuning_init="TEXT",
            prompt_tuning_init_text=INIT_TEXT,
            tokenizer_name_or_path=str(minilm_dir),
        )
        theirs = PromptEmbedding(config, ours.base.tok_emb)
        assert torch.equal(ours.prompt.embedding.weight, theirs.embedding.weight)


def test_vocab_and_random_init_and_frozen_base(tiny_bert):
    vocab = build_model(tiny_bert, "prompt", "classification", LABELS, MethodSettings(prompt_init="vocab"))
    table = vocab.base.tok_emb.weight
    for row in vocab.prompt.embedding.weight:  # every virtual token is some word's embedding
        assert (table == row).all(dim=1).any()
    rand = build_model(tiny_bert, "prompt", "classification", LABELS, MethodSettings(), seed=1)
    assert rand.prompt.embedding.weight.shape == (20, 32)
    assert rand.prompt.embedding.weight.std().item() == pytest.approx(table.std().item(), rel=0.25)
    assert not any(p.requires_grad for p in rand.base.parameters())


def test_prompt_changes_the_output_and_masks_are_extended(tiny_bert):
    model = build_model(tiny_bert, "prompt", "classification", LABELS, MethodSettings(num_virtual_tokens=3))
    model.eval()
    texts = ["a fine film", "not good at all , sadly"]
    before = logits_of(model, texts)
    with torch.no_grad():
        model.prompt.embedding.weight.add_(torch.randn(3, 32))  # (a constant would vanish in LayerNorm)
    assert not torch.allclose(logits_of(model, texts), before)
    embeds, mask, types = model.prompt.prepend(
        torch.zeros(2, 5, 32), torch.ones(2, 5, dtype=torch.long), None
    )
    assert embeds.shape == (2, 8, 32) and mask.shape == (2, 8) and mask.all() and types is None
    b = encode_texts(model.tokenizer, texts, None, 64)  # a padded row's logits do not depend on the padding
    padded = model(b.input_ids, b.attention_mask, b.token_type_ids)
    torch.testing.assert_close(padded[0], logits_of(model, texts[:1])[0], rtol=0, atol=1e-5)
