"""Passkey retrieval: a number hidden in filler text at a chosen depth, asked for at the end.

Task: Mohtashami & Jaggi (2023), "Landmark Attention: Random-Access Infinite Context Length for
Transformers", appendix, as used by the YaRN paper (Peng et al. 2023, section 4.3) — their wording:

    There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz
    you about the important information there. The grass is green. The sky is blue. The sun is yellow.
    Here we go. There and back again. (repeated) The pass key is 71432. Remember it. 71432 is the pass key.
    (more filler) What is the pass key? The pass key is 71432

Deviations, for contexts of 64-512 tokens and a model of three layers trained for minutes:
- The key is one digit, 0 to 9, a token of its own with its leading space (the study's tokenizer is
  trained on the task's text), not five digits; chance is 10%. Five digits need induction heads to copy
  the second to fifth digit, which such a model does not form in minutes: measured after 2400 steps at 64
  tokens, the first digit came back in 100% of trials, each later digit at chance (10%). With a two-digit
  key among 90 one-token numbers, retrieval stayed at chance after 2000 steps. Retrieval over distance,
  what context extension is about, is the one token.
- The opening instructions are left out, the key is stated once ("The pass key is 7. Remember it."),
  and the filler is cut sentence by sentence (not in blocks of five), so that the key can sit at any depth
  of a short context.
"Depth" is the share of the filler placed before the key (0: first, 1: just before the question). A model
passes a trial when greedy decoding after "The pass key is" gives exactly the key's token(s), checked in one
teacher-forced pass (greedy decoding yields a sequence iff each of its tokens is the argmax given the ones
before it). Documents are assembled from separately encoded pieces, each starting with a space (the
byte-level pre-tokenizer splits there), so their length in tokens is known before encoding (tested).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from llmlab.errors import LlmlabError
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.pipeline import Tokenizer

FILLER = (
    " The grass is green.",
    " The sky is blue.",
    " The sun is yellow.",
    " Here we go.",
    " There and back again.",
)
KEY = " The pass key is {key}. Remember it."
QUESTION = " What is the pass key? The pass key is"
ANSWER = " {key}"


@dataclass(frozen=True)
class PasskeyDocument:
    """One trial: the prompt ending in "The pass key is" and the key's tokens that should follow."""

    text: str  # prompt + answer, for training
    prompt_ids: list[int]
    answer_ids: list[int]


def passkey_document(tokenizer: Tokenizer, length: int, depth: float, rng: random.Random) -> PasskeyDocument:
    """A document of at most `length` tokens (prompt and answer) with a random key at `depth` in [0, 1].

    Raises:
        LlmlabError: `length` cannot hold the key, the question and two filler sentences.
    """
    key = rng.choice(key_digits(tokenizer))
    key_text = KEY.format(key=key)
    answer_text = ANSWER.format(key=key)
    key_ids, question, answer = (tokenizer.encode(p).ids for p in (key_text, QUESTION, answer_text))
    sentences = filler(tokenizer, length - len(key_ids) - len(question) - len(answer))
    if len(sentences) < 2:
        raise LlmlabError(f"passkey: {length} tokens cannot hold the key, the question and some filler")
    before = round(depth * len(sentences))
    prompt = [i for _, ids in sentences[:before] for i in ids] + key_ids
    prompt += [i for _, ids in sentences[before:] for i in ids] + question
    texts = [text for text, _ in sentences]
    text = "".join(texts[:before]) + key_text + "".join(texts[before:]) + QUESTION + answer_text
    return PasskeyDocument(text, prompt, answer)


def key_digits(tokenizer: Tokenizer) -> list[str]:
    """The candidate keys: the digits 0-9, each of which must be one token with its leading space.

    Raises:
        LlmlabError: a digit that is not (a tokenizer not trained on the task's text, see run.study_tokenizer).
    """
    split = [d for d in "0123456789" if len(tokenizer.encode(f" {d}").ids) != 1]
    if split:
        raise LlmlabError(f"passkey: ' {split[0]}' is not one token; train the tokenizer on the task's text")
    return list("0123456789")


def filler(tokenizer: Tokenizer, room: int) -> list[tuple[str, list[int]]]:
    """As many filler sentences (text, ids), cycling, as fit in `room` tokens."""
    cycle = [(text, tokenizer.encode(text).ids) for text in FILLER]
    out: list[tuple[str, list[int]]] = []
    while room >= len(cycle[len(out) % len(cycle)][1]):
        out.append(cycle[len(out) % len(cycle)])
        room -= len(out[-1][1])
    return out


@torch.no_grad()
def passkey_accuracy(
    model: Transformer, tokenizer: Tokenizer, length: int, depth: float, trials: int, seed: int = 0
) -> float:
    """Share of `trials` documents of `length` tokens, key at `depth`, whose key the model retrieves greedily."""
    rng = random.Random(f"{seed}-{length}-{depth}")
    was_training = model.training
    model.eval()
    hits = 0
    for _ in range(trials):
        doc = passkey_document(tokenizer, length, depth, rng)
        ids = torch.tensor([doc.prompt_ids + doc.answer_ids[:-1]])  # (1, T): the answer teacher-forced
        logits = model(ids).logits[0, len(doc.prompt_ids) - 1 :]  # (len(answer), V)
        hits += bool((logits.argmax(dim=-1) == torch.tensor(doc.answer_ids)).all())
    model.train(was_training)
    return hits / trials
