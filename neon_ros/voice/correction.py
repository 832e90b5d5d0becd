"""Vocabulary-constrained second pass: a transcript's near-miss words, corrected when the audio agrees.

Whisper tiny.en, even primed with the command vocabulary, often hears a robot word as an English
word that sounds alike ('Drop the boil on the floor', 'Lock at the window', 'Give me the timer').
When a transcript has out-of-vocabulary content words (``Vocabulary.unknown_words``), ``candidates``
proposes texts with fewer of them and more known ones (an unknown word dropped or turned into a
function word, 'Put the below on the bed' for 'Put the pillow on the bed', is no correction):

- Whisper's own other beam hypotheses (free: the beam search computed them);
- the transcript with each unknown word swapped for the vocabulary words that sound most like it
  (``sound_key`` and ``sound_distance``: a small phonetic spelling and an edit distance on it).

The recognizer then scores every candidate and the transcript itself on the same audio (Whisper's
log-probability of the text, teacher-forced; ``FasterWhisperAsr``), and ``choose`` keeps the
transcript unless a candidate with fewer unknown words scores at most ``margin`` nats below it:
the vocabulary is a prior, the audio has the last word. A spelling-only snap would turn every
unknown word into the nearest known one; this changes a word only when Whisper, listening again,
finds the known word about as likely as what it first wrote.

One more near miss has no unknown word to flag it: tiny.en hears 'the' and a short object as
'them' and a word that sounds like the object's end ('Push the box' -> 'Push them up', 'Take the
ball' -> 'Take them all'). A command's object is never 'them' in the vocabulary, so a transcript
with it counts it as one unknown word, and the candidates add the transcript with 'them' and
the word after it swapped for 'the OBJECT', for every object of the vocabulary (found on a
development set of 32 b/p-object commands in two voices: 4 of 32 heard so, 3 corrected within the
margin, the right object 5-9 nats ahead of the next; ~80 ms to score 23 objects, only then).

A transcript without unknown words is passed through untouched, with no extra decoding.

The vocabulary reading (reading.py: Whisper's own decode, restricted to the vocabulary's words)
is one more candidate, and the first one tried. It always has vocabulary words, also when the
speaker said something else, so ``accept_reading`` keeps it only when it looks like a command
heard whole and the audio does not veto it (module constants below: measured on two development
sets of 40 and 30 commands, each said twice in five espeak-ng voices, and on 20 sentences that
are not commands said twice; none of the held-out phrases of the tests).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neon_ros.voice.reading import Reading
    from neon_ros.voice.vocabulary import Vocabulary

# Spelling -> sound, applied in order ('C' is the ch sound).
_SPELLINGS = (("tch", "C"), ("ch", "C"), ("sh", "s"), ("ph", "f"), ("th", "t"), ("ck", "k"), ("wh", "w"),
              ("gh", ""), ("dg", "j"), ("qu", "kw"), ("q", "k"), ("x", "ks"))
# Sounds that differ only in voicing or are easily confused: half the cost of another substitution.
_NEAR = frozenset(frozenset(pair) for pair in ("bp", "dt", "gk", "fv", "sz", "mn", "jC", "sC", "lr"))
_WEAK = frozenset("ahwyr")  # vowels and glides: half the cost to insert or drop
_WORD = re.compile(r"[A-Za-z0-9']+")
# More unknown words than this is a whole-phrase mishearing or not a command at all (the
# vocabulary guard's case), not a near miss; and the swaps to try grow as (neighbours + 1) ** n.
MAX_UNKNOWN = 3
PRONOUN_OBJECT = "them"  # what tiny.en makes of 'the' + a short object (module doc)
# The vocabulary reading's gate (``accept_reading``). Right readings scored 0-7.4 nats below the
# transcript (unprompted, on the audio) and -0.35..-1.55 nats per word with the prompt; readings of
# sentences that are not commands 0-23 below and -0.9..-4.3 per word, most of them ending on a
# function word ('Let me take a', 'The door is') or with fewer content words than the transcript.
READING_MIN_LOGPROB = -1.6  # nats per word (the end counted as one), with the vocabulary prompt


def sound_key(word: str) -> str:
    """A rough phonetic spelling: digraphs to one sound, soft c to s, a final silent e dropped,
    every vowel group one 'a', doubled letters once ('kettle' -> 'katl', 'candle' -> 'kandl',
    'boil' and 'ball' -> 'bal'). Vowels collapse because Whisper's near-misses keep the
    consonants and change the vowels."""
    w = re.sub(r"^wr", "r", re.sub(r"^kn", "n", word.lower()))
    for spelling, sound in _SPELLINGS:
        w = w.replace(spelling, sound)
    w = re.sub(r"c(?=[eiy])", "s", w).replace("c", "k")
    if len(w) > 2:
        w = re.sub(r"(?<=[^aeiou])e$", "", w)
    w = re.sub(r"(?<=[aeiou])w", "", w)  # 'ow', 'aw': a vowel
    w = re.sub(r"[aeiouy]+", "a", w)
    return re.sub(r"(.)\1+", r"\1", w)


@lru_cache(maxsize=4096)
def sound_distance(a: str, b: str) -> float:
    """Edit distance between two sound keys: a vowel or glide inserted or dropped and a near pair
    ('d'/'t', 'm'/'n', ...) swapped cost 0.5, anything else 1."""
    prev = [0.0]
    for c in b:
        prev.append(prev[-1] + (0.5 if c in _WEAK else 1.0))
    for ca in a:
        cur = [prev[0] + (0.5 if ca in _WEAK else 1.0)]
        for j, cb in enumerate(b, 1):
            swap = 0.0 if ca == cb else 0.5 if frozenset((ca, cb)) in _NEAR else 1.0
            cur.append(min(prev[j] + (0.5 if ca in _WEAK else 1.0), cur[j - 1] + (0.5 if cb in _WEAK else 1.0),
                           prev[j - 1] + swap))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class Candidate:
    """A text to score, with what the vocabulary makes of it."""

    text: str  # as Whisper would write it (casing, punctuation)
    unknown: int  # its out-of-vocabulary content words
    known: int  # its content words in the vocabulary


class Corrector:
    """Proposes and picks corrections of out-of-vocabulary words (see module doc).

    neighbours: the vocabulary words tried per unknown word (the nearest in sound, at most
    ``max(1, len(key) / 2)`` apart); limit: the most candidates returned (each costs a scoring
    pass); margin: how many nats below the transcript a candidate may score and still win.
    """

    def __init__(self, vocabulary: Vocabulary, margin: float, limit: int, neighbours: int = 3,
                 reading_margin: float = 0.0):
        if margin < 0 or limit < 1 or neighbours < 1 or reading_margin < 0:
            raise ValueError("margin and reading_margin must be >= 0, limit and neighbours >= 1")
        self.vocabulary = vocabulary
        self.margin = margin
        self.reading_margin = reading_margin
        self.limit = limit
        self.neighbours = neighbours
        self._keys = {w: sound_key(w) for w in sorted(vocabulary.content_words)}

    def candidate(self, text: str) -> Candidate:
        content, unknown = self.vocabulary.unknown_words(text)
        doubt = len(unknown) + (PRONOUN_OBJECT in _norm(text).split())  # 'them' for an object: one more
        return Candidate(text, doubt, len(content) - len(unknown))

    def near(self, word: str) -> list[str]:
        """The vocabulary words that sound most like ``word``, nearest first."""
        key = sound_key(word)
        limit = max(1.0, len(key) / 2)
        scored = sorted((sound_distance(key, k), w) for w, k in self._keys.items())
        return [w for d, w in scored if d <= limit][:self.neighbours]

    def candidates(self, hypotheses: list[str]) -> list[Candidate]:
        """Texts with fewer unknown and more known words than ``hypotheses[0]`` (the transcript),
        fewest unknown first: Whisper's other hypotheses, then the transcript with its unknown
        words swapped for ``near`` ones (every combination), then with 'them' made an object
        (``object_swaps``). Empty when the transcript has no unknown words (a 'them' counts as
        one), or more than MAX_UNKNOWN. At most ``limit`` of the first kinds, every object swap."""
        _, unknown_words = self.vocabulary.unknown_words(hypotheses[0])
        top = self.candidate(hypotheses[0])
        if not top.unknown or top.unknown > MAX_UNKNOWN:
            return []
        unknown = list(dict.fromkeys(unknown_words))
        swaps = [[None, *self.near(u)] for u in unknown]
        texts = itertools.chain(hypotheses[1:], (_swap(top.text, dict(zip(unknown, combo, strict=True)))
                                                 for combo in itertools.product(*swaps)))
        found = {_norm(top.text)}
        out = []
        for text in texts:
            c = self.candidate(text)
            if c.unknown < top.unknown and c.known > top.known and _norm(text) not in found:
                found.add(_norm(text))
                out.append(c)
        objects = [c for c in map(self.candidate, self.object_swaps(top.text))
                   if c.unknown < top.unknown and _norm(c.text) not in found]  # a beam hypothesis is scored once
        return sorted(out, key=lambda c: c.unknown)[:self.limit] + objects

    def object_swaps(self, text: str) -> list[str]:
        """``text`` with its first 'them' and the word after it (if any) swapped for 'the OBJECT',
        one text per object of the vocabulary ('Take them all.' -> 'Take the ball.', ...)."""
        words = list(_WORD.finditer(text))
        for i, m in enumerate(words):
            if m.group().lower() == PRONOUN_OBJECT:
                end = words[i + 1].end() if i + 1 < len(words) else m.end()
                return [f"{text[:m.start()]}the {obj}{text[end:]}" for obj in self.vocabulary.objects]
        return []

    def accept_reading(self, transcript: str, score: float, reading: Reading, reading_score: float) -> bool:
        """Whether the vocabulary reading replaces ``transcript`` (``score`` and ``reading_score``:
        Whisper's log-probability of each on the audio, unprompted, as ``choose`` compares them):
        it has fewer unknown words, as many content words or one more (not a sentence said twice:
        'Take the lid off the pot. Take the lid off my pot.'), and does not end on a function word
        (a command is heard whole, not cut off at 'the' or 'my'); Whisper found it likely with the
        prompt (``READING_MIN_LOGPROB`` per word); and it scores at most ``reading_margin`` nats
        below the transcript (0 = readings off)."""
        words = _norm(reading.text).split()
        if not self.reading_margin or not words or " ".join(words) == _norm(transcript):
            return False
        voc = self.vocabulary
        fewer_unknown = self.candidate(reading.text).unknown < self.candidate(transcript).unknown
        extra_words = len(voc.unknown_words(reading.text)[0]) - len(voc.unknown_words(transcript)[0])
        whole = 0 <= extra_words <= 1 and voc.ends_on_content(reading.text)
        likely = reading.logprob / (len(words) + 1) >= READING_MIN_LOGPROB
        return fewer_unknown and whole and likely and reading_score >= score - self.reading_margin

    def choose(self, transcript: str, score: float, candidates: list[Candidate], scores: list[float]) -> str:
        """The candidate with the fewest unknown words, then the best score, among those at most
        ``margin`` below the transcript's ``score``; else the transcript."""
        ok = [(c.unknown, -s, c.text) for c, s in zip(candidates, scores, strict=True) if s >= score - self.margin]
        return min(ok)[2] if ok else transcript


def _norm(text: str) -> str:
    """The words of ``text`` in lower case: candidates that differ only in casing or punctuation
    are scored once."""
    return " ".join(m.group().lower() for m in _WORD.finditer(text))


def _swap(text: str, words: dict[str, str | None]) -> str:
    """``text`` with each word (case-insensitive, whole words) replaced as ``words`` says
    (None = kept); a capital first letter stays capital."""
    def one(m: re.Match) -> str:
        new = words.get(m.group().lower().replace("'", ""))
        if new is None:
            return m.group()
        return new[0].upper() + new[1:] if m.group()[0].isupper() else new
    return _WORD.sub(one, text)
