"""The vocabulary reading: Whisper's best transcript of an utterance written in the vocabulary's words.

Whisper tiny.en, primed with the command vocabulary, still writes a robot word as an English word
that sounds alike ('Carry the marks to the kitchen.', 'Feel the last wind water.', 'Shape the
bottle.'). The near-miss correction (correction.py) swaps such a word for vocabulary words that
are spelled alike; Whisper's own ears do better: the same decoder, run again with every token
it may write restricted to those that spell an allowed word (``WordTrie``: the vocabulary, its
function words and the plurals of its content words), finds the likeliest sentence made of them
('Carry the box to the kitchen.', 'Fill the glass with water.', 'Shake the bottle.').

CTranslate2 runs Whisper's decoder a whole sequence at a time, with no hook between tokens, so
this beam search steps the same weights in PyTorch (``ct2_whisper.load_openai_model``: the
bundled tiny.en, read into openai-whisper's model, nothing written), on the encoder output the
first pass already computed: a reading costs decoder steps only (~0.2-0.4 s for tiny.en on 2
cores), and FasterWhisperAsr asks for one only when the transcript has out-of-vocabulary words.

A reading always has the vocabulary's words, also when the speaker said something else ('Tell
me a joke.' reads as 'Take the other.'): whether to keep it is decided by
``Corrector.accept_reading``, with the audio's score of both texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neon_ros.voice.ct2_whisper import load_openai_model
from neon_ros.voice.vocabulary import FUNCTION_WORDS, Vocabulary, repeated_phrase

PUNCTUATION = (".", ",", "!", "?")  # what may follow a word (one mark, then a word or the end)
MAX_TOKENS = 32  # a spoken command is 5-20 tokens


def plural(word: str) -> str:
    """'cup' -> 'cups', 'box' -> 'boxes', 'berry' -> 'berries' (the regular English plural)."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def reading_words(vocabulary: Vocabulary) -> list[str]:
    """The words a reading may use: the vocabulary's, its function words, and the plurals of its
    content words (``Vocabulary.known`` knows them too)."""
    words = set(vocabulary.words) | FUNCTION_WORDS | {plural(w) for w in vocabulary.content_words}
    return sorted(w for w in words if w.isalpha())


class WordTrie:
    """The token sequences that spell each word as Whisper writes it inside a sentence: a leading
    space, the first letter in lower or upper case (' cup', ' Cup'). Node 0 is a word boundary;
    ``complete[node]``: a whole word ends there."""

    def __init__(self, encode: Callable[[str], list[int]], words: Iterable[str],
                 punctuation: Iterable[int], eot: int):
        self.children: list[dict[int, int]] = [{}]
        self.complete: list[bool] = [False]
        for word in words:
            for spelling in {f" {word}", f" {word[:1].upper()}{word[1:]}"}:
                node = 0
                for token in encode(spelling):
                    if token not in self.children[node]:
                        self.children[node][token] = len(self.children)
                        self.children.append({})
                        self.complete.append(False)
                    node = self.children[node][token]
                self.complete[node] = True
        self.punctuation = tuple(punctuation)
        self.eot = eot
        self._next: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def next(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens that may follow, the node each leads to): the rest of the word; after a whole
        word also a new word or one punctuation mark; at the boundary a new word."""
        if node not in self._next:
            follow = dict(self.children[node])
            if self.complete[node]:
                follow.update(self.children[0])
                follow.update(dict.fromkeys(self.punctuation, 0))
            self._next[node] = (np.fromiter(follow, np.int64, len(follow)),
                                np.fromiter(follow.values(), np.int64, len(follow)))
        return self._next[node]

    def may_end(self, node: int, tokens: tuple[int, ...]) -> bool:
        """Whether the text may end here: after a whole word or its punctuation mark."""
        return bool(tokens) and (self.complete[node] or node == 0)

    def spells(self, tokens: Iterable[int]) -> bool:
        """Whether ``tokens`` are allowed words and marks, in an allowed order, ending whole."""
        node, seen = 0, ()
        for token in tokens:
            ids, nodes = self.next(node)
            hit = np.flatnonzero(ids == token)
            if not hit.size:
                return False
            node, seen = int(nodes[hit[0]]), (*seen, token)
        return self.may_end(node, seen)


class Reading(NamedTuple):
    text: str
    logprob: float  # Whisper's log-probability of the tokens and the end, with the prompt


class _Beam(NamedTuple):
    score: float
    tokens: tuple[int, ...]
    node: int
    parent: int  # the beam it extends (a row of the decoder's cache)


class VocabularyReader:
    """Beam search of Whisper's decoder restricted to ``trie`` (see module doc).

    model: openai-whisper's ``Whisper`` (only its decoder runs); decode: token ids -> text.
    """

    def __init__(self, model, trie: WordTrie, decode: Callable[[list[int]], str], beam: int = 5,
                 max_tokens: int = MAX_TOKENS):
        if beam < 1 or max_tokens < 1:
            raise ValueError("beam and max_tokens must be >= 1")
        self.model, self.trie, self.decode = model, trie, decode
        self.beam, self.max_tokens = beam, max_tokens

    @classmethod
    def of_model(cls, path: str | Path, tokenizer, vocabulary: Vocabulary, beam: int, threads: int
                 ) -> VocabularyReader:
        """The reader of the CTranslate2 Whisper model at ``path`` (its weights read into PyTorch)
        with faster_whisper's ``tokenizer``; ImportError without torch or openai-whisper."""
        import torch

        torch.set_num_threads(threads)
        trie = WordTrie(tokenizer.encode, reading_words(vocabulary),
                        [tokenizer.encode(p)[0] for p in PUNCTUATION], tokenizer.eot)
        return cls(load_openai_model(path), trie, tokenizer.decode, beam=beam)

    def read(self, encoded: np.ndarray, prefix: list[int]) -> list[Reading]:
        """The finished readings of ``encoded`` (Whisper's encoder output, (1, frames, width))
        after ``prefix`` (the prompt and start tokens), likeliest per token first; none that
        repeat a phrase (Whisper's loop)."""
        import torch

        trie, beam = self.trie, self.beam
        steps = min(self.max_tokens, self.model.dims.n_text_ctx - len(prefix))
        finished: list[tuple[float, tuple[int, ...]]] = []
        cache, hooks = self.model.install_kv_cache_hooks()
        try:
            with torch.inference_mode():
                xa = torch.from_numpy(np.ascontiguousarray(encoded, dtype=np.float32))
                logits = self.model.decoder(torch.tensor([prefix]), xa, kv_cache=cache)[:, -1]
                beams = [_Beam(0.0, (), 0, 0)]
                for _ in range(steps):
                    logprobs = torch.log_softmax(logits.float(), dim=-1)
                    grown = []
                    for row, b in enumerate(beams):
                        if trie.may_end(b.node, b.tokens):
                            finished.append((b.score + float(logprobs[row, trie.eot]), b.tokens))
                        ids, nodes = trie.next(b.node)
                        best = torch.topk(logprobs[row, torch.from_numpy(ids)], min(beam, ids.size))
                        grown += [_Beam(b.score + v, (*b.tokens, int(ids[j])), int(nodes[j]), row)
                                  for v, j in zip(best.values.tolist(), best.indices.tolist(), strict=True)]
                    grown = sorted(grown, key=lambda g: -g.score)[:beam]
                    # scores only fall as a text grows: no open beam can beat a finished one above it
                    if not grown or (len(finished) >= beam and max(f[0] for f in finished) >= grown[0].score):
                        break
                    rows = torch.tensor([g.parent for g in grown])
                    for module in cache:
                        cache[module] = cache[module][rows]
                    logits = self.model.decoder(torch.tensor([[g.tokens[-1]] for g in grown]), xa,
                                                kv_cache=cache)[:, -1]
                    beams = grown
        finally:
            for hook in hooks:
                hook.remove()
        finished.sort(key=lambda f: -f[0] / (len(f[1]) + 1))
        readings = [Reading(self.decode(list(tokens)).strip(), score) for score, tokens in finished]
        return [r for r in readings if not repeated_phrase(r.text)]
