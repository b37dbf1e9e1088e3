"""BERT's masked-LM head (`mlm_head`): config rules, checkpoints, and exact parity with `BertForMaskedLM`.

Reference: `transformers.BertForMaskedLM` built from a small random config (seeded, every parameter moved
off its init), both ways: our export loads there without missing or unexpected keys, its save_pretrained
folder loads here; logits within 1e-5 on a padded batch with token types. The tokenizer is MiniLM's
(a real BERT WordPiece vocabulary with [MASK]); the weights are random.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmlab.cli import main
from llmlab.errors import LlmlabError
from llmlab.finetuning.data import Example
from llmlab.finetuning.methods import MethodSettings, build_model, load_finetuned
from llmlab.finetuning.trainer import TrainConfig, train
from llmlab.model import ModelConfig, Transformer
from llmlab.model.checkpoint import load_model, save_model
from llmlab.model.hf_export import to_hf
from llmlab.model.hf_import import from_hf
from llmlab.tokenizer.pipeline import Tokenizer
from tests.model.test_hf_interop import encoder_settings, perturb

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
TOL = 1e-5
V = 30522  # MiniLM's vocabulary
HEAD = {  # what BertForMaskedLM.save_pretrained writes for the head (the decoder is tied)
    "cls.predictions.bias",
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias",
}


def encoder_config(**overrides) -> ModelConfig:
    """A small BERT-shaped encoder with the MLM head (exportable as BertForMaskedLM)."""
    settings = dict(
        vocab_size=V,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=48,
        max_seq_len=64,
        positional="learned",
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        mlm_head=True,
    )
    return ModelConfig(**(settings | encoder_settings() | overrides))


def random_mlm_encoder(seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(encoder_config(**overrides)).eval()
    perturb(model, seed + 1)
    return model


def padded_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask, token types) of shape (3, 20): row 1 padded after 12 tokens, row 2 after 5."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, V, (3, 20), generator=g)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 12:], mask[2, 5:] = 0, 0
    ids[mask == 0] = 0  # [PAD]
    types = torch.zeros(3, 20, dtype=torch.long)
    types[:, 8:] = 1
    return ids, mask, types


def max_logit_diff(model: Transformer, hf, seed: int = 0) -> float:
    """Max abs difference of our logits and the HF model's at the non-pad positions of a padded batch."""
    ids, mask, types = padded_batch(seed)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask, token_type_ids=types).logits
        theirs = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    keep = mask.bool()
    return (ours[keep] - theirs[keep]).abs().max().item()


@pytest.fixture(scope="module")
def tokenizer(minilm_dir) -> Tokenizer:
    return Tokenizer.load(minilm_dir / "tokenizer.json")


def hf_bert_for_masked_lm(folder, tokenizer: Tokenizer, seed: int = 0):
    """A seeded, perturbed HF BertForMaskedLM saved with save_pretrained, MiniLM's tokenizer beside it."""
    config = transformers.BertConfig(
        vocab_size=V,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        hidden_act="gelu",
    )
    torch.manual_seed(seed)
    hf = transformers.BertForMaskedLM(config).eval()
    perturb(hf, seed + 1)
    hf.save_pretrained(folder)
    tokenizer.save(folder / "tokenizer.json")
    return hf


# --- the model and its config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"causal": True}, "mlm_head=true is BERT's masked-LM head; it needs an encoder (causal=false)"),
        ({"tie_embeddings": False}, "mlm_head=true needs tie_embeddings=true"),
        ({"mlm_head": 1}, "mlm_head=1 must be true or false"),
    ],
)
def test_config_refuses_an_mlm_head_it_cannot_have(overrides, message):
    with pytest.raises(LlmlabError) as e:
        encoder_config(**overrides)
    assert str(e.value).startswith("model config: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_an_old_config_without_the_field_loads_without_the_head(tmp_path):
    old = encoder_config(mlm_head=False).to_dict()
    del old["mlm_head"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = ModelConfig.load(tmp_path / "config.json")
    assert config.mlm_head is False
    model = Transformer(config)
    assert model.mlm_transform is None and model.lm_head.bias is None


def test_head_is_initialised_like_bert_and_leaves_the_encoder_output_alone():
    torch.manual_seed(0)
    model = Transformer(encoder_config(d_model=256, d_ff=512)).eval()
    transform = model.mlm_transform
    assert abs(transform.dense.weight.std().item() - 0.02) < 0.001  # N(0, 0.02) over 65k weights
    assert not transform.dense.bias.any() and not model.lm_head.bias.any()
    assert torch.equal(transform.norm.weight, torch.ones(256)) and not transform.norm.bias.any()
    assert model.lm_head.weight is model.tok_emb.weight
    perturb(model, 1)
    plain = Transformer(encoder_config(d_model=256, d_ff=512, mlm_head=False)).eval()
    unused = plain.load_state_dict(model.state_dict(), strict=False).unexpected_keys
    assert sorted(unused) == sorted(
        n for n in model.state_dict() if n.startswith("mlm_") or n == "lm_head.bias"
    )
    ids, mask, _ = padded_batch()
    F = torch.nn.functional
    with torch.no_grad():
        out, base = model(ids, attention_mask=mask), plain(ids, attention_mask=mask)
        h = F.gelu(F.linear(out.last_hidden_state, transform.dense.weight, transform.dense.bias))
        h = F.layer_norm(h, (256,), transform.norm.weight, transform.norm.bias, eps=1e-12)
        by_hand = F.linear(h, model.tok_emb.weight, model.lm_head.bias)  # (B, T, V)
    assert torch.equal(out.last_hidden_state, base.last_hidden_state)
    torch.testing.assert_close(out.logits, by_hand)


def test_logits_at_gives_the_full_logits_at_those_positions_only():
    torch.manual_seed(0)
    model = Transformer(encoder_config()).eval()
    perturb(model, 2)
    ids, mask, _ = padded_batch()
    chosen = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.15  # (B, T)
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits  # (B, T, V)
        some = model(ids, attention_mask=mask, logits_at=chosen).logits  # (N, V)
    assert some.shape == (int(chosen.sum()), full.shape[-1])
    torch.testing.assert_close(some, full[chosen], rtol=0, atol=1e-6)


def test_checkpoint_round_trip_keeps_the_head(tmp_path, tokenizer):
    model = random_mlm_encoder()
    save_model(tmp_path, model, tokenizer)
    names = set(load_file(tmp_path / "model.safetensors"))
    assert {"mlm_transform.dense.weight", "mlm_transform.norm.bias", "lm_head.bias"} <= names
    assert "lm_head.weight" not in names  # tied: stored once, as tok_emb.weight
    loaded, _ = load_model(tmp_path)
    ids, mask, types = padded_batch()
    with torch.no_grad():
        assert torch.equal(
            loaded(ids, mask, types).logits,
            model(ids, mask, types).logits,
        )


# --- Hugging Face, both ways ------------------------------------------------------------------------------


def test_export_loads_in_bert_for_masked_lm_with_the_same_logits(tmp_path, tokenizer):
    model = random_mlm_encoder(seed=2)
    to_hf(model, tokenizer, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    assert {n for n in load_file(tmp_path / "model.safetensors") if not n.startswith("bert.")} == HEAD
    hf, info = transformers.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    diff = max_logit_diff(model, hf.eval(), seed=3)
    print(f"\nllmlab -> BertForMaskedLM: max abs logit diff {diff:.2e}")
    assert diff <= TOL


def test_bert_for_masked_lm_imports_with_its_head_and_exports_back_losslessly(tmp_path, tokenizer):
    hf = hf_bert_for_masked_lm(tmp_path / "hf", tokenizer, seed=4)
    model, _ = from_hf(tmp_path / "hf")
    assert model.config.mlm_head and model.config.tie_embeddings
    diff = max_logit_diff(model, hf, seed=5)
    print(f"\nBertForMaskedLM -> llmlab: max abs logit diff {diff:.2e}")
    assert diff <= TOL
    to_hf(model, tokenizer, tmp_path / "back")
    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("hf", "back"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_convert_cli_both_ways_gives_the_same_logits(tmp_path, tokenizer, capsys):
    hf = hf_bert_for_masked_lm(tmp_path / "hf", tokenizer, seed=6)
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "ours")]) == 0
    assert main(["convert", "--to-hf", str(tmp_path / "ours"), "-o", str(tmp_path / "back")]) == 0
    capsys.readouterr()
    assert load_model(tmp_path / "ours")[0].config.mlm_head
    back = transformers.BertForMaskedLM.from_pretrained(tmp_path / "back").eval()
    ids, mask, types = padded_batch(seed=7)
    with torch.no_grad():
        a = back(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        b = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert torch.equal(a, b)


def test_bert_model_without_the_head_loads_as_before(minilm_dir):
    model, _ = from_hf(minilm_dir)
    assert not model.config.mlm_head and not model.config.tie_embeddings
    assert model.mlm_transform is None and model.lm_head is None
    assert model(torch.tensor([[101, 7592, 102]])).logits is None


def test_an_untied_decoder_is_refused_in_one_line(tmp_path, tokenizer):
    hf_bert_for_masked_lm(tmp_path, tokenizer)
    path = tmp_path / "model.safetensors"
    tensors = load_file(path)
    decoder = tensors["bert.embeddings.word_embeddings.weight"].clone()
    save_file(tensors | {"cls.predictions.decoder.weight": decoder}, path)
    assert from_hf(tmp_path)[0].config.mlm_head  # a tied copy, as older transformers saved it: fine
    decoder[0, 0] += 1
    save_file(tensors | {"cls.predictions.decoder.weight": decoder}, path)
    with pytest.raises(LlmlabError) as e:
        from_hf(tmp_path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    assert "cls.predictions.decoder.weight differs from the word embeddings" in message


# --- fine-tuning reads an MLM checkpoint's encoder ----------------------------------------------------------


def test_finetune_trains_a_classifier_on_an_mlm_checkpoint(tmp_path, tokenizer):
    """The encoder trains; the MLM head, which classification never reads, is carried along unchanged."""
    save_model(tmp_path / "base", random_mlm_encoder(seed=8), tokenizer)
    before = dict(load_model(tmp_path / "base")[0].named_parameters())
    ft = build_model(tmp_path / "base", "full", "classification", ["neg", "pos"], MethodSettings(), seed=0)
    texts = ["a fine film", "dull and slow", "a joy to watch", "not good at all"] * 4
    examples = [Example(t, i % 2) for i, t in enumerate(texts)]
    config = TrainConfig(lr=1e-3, batch_size=4, max_steps=3, warmup_ratio=0.0, max_length=16)
    result = train(ft, examples, examples[:4], config, tmp_path / "run", progress=False)
    assert len(result.step_losses) == 3 and all(torch.isfinite(torch.tensor(result.step_losses)))
    ft.save(tmp_path / "out")
    loaded = dict(load_finetuned(tmp_path / "out").base.named_parameters())
    for name, p in ft.base.named_parameters():
        assert torch.equal(p, loaded[name]), name
        head = name.startswith("mlm_transform.") or name == "lm_head.bias"
        assert torch.equal(p, before[name]) == head, name
