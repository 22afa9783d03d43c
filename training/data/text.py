"""English sentences for the synthetic corpus: the example sentences of WordNet 3.0 glosses.

Source: Debian package ``wordnet-base`` (``/usr/share/wordnet/data.*``), WordNet 3.0 licence (permissive;
the notice in :data:`WORDNET_NOTICE` must accompany copies, so every corpus carries it in ``LICENSES.txt``).
Sentences are kept when every word is in festival's CMU lexicon (``festlex-cmu``), so all three engines
pronounce them from a dictionary rather than from letter-to-sound rules.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

WORDNET_DIR = Path("/usr/share/wordnet")
CMU_LEXICON = Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
MIN_SENTENCE_WORDS, MAX_SENTENCE_WORDS = 4, 20

TEXT_SOURCE = {
    "name": "WordNet 3.0 gloss example sentences",
    "package": "wordnet-base",
    "licence": "WordNet 3.0 licence (permissive; keep the copyright notice)",
    "filter": "every word in festival's CMU lexicon (festlex-cmu); 4-20 words; letters and , ; ' only",
}
WORDNET_NOTICE = """\
WordNet Release 3.0. This software and database is being provided to you, the LICENSEE, by Princeton
University under the following license. By obtaining, using and/or copying this software and database,
you agree that you have read, understood, and will comply with these terms and conditions.: Permission
to use, copy, modify and distribute this software and database and its documentation for any purpose
and without fee or royalty is hereby granted, provided that you agree to comply with the following
copyright notice and statements, including the disclaimer, and that the same appear on ALL copies of
the software, database and documentation, including modifications that you make for internal use or
for distribution. WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS
SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR
WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO
REPRESENTATIONS OR WARRANTIES OF MERCHANT- ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE
USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS,
COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may not be used
in advertising or publicity pertaining to distribution of the software and/or database. Title to
copyright in this software, database and any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same.
"""

_QUOTED = re.compile(r'"([^"]+)"')
_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,;']*[A-Za-z]$")
_WORD = re.compile(r"[a-z']+")
_LEXICON_ENTRY = re.compile(r'^\("([^"]+)"')


def missing_files() -> list[tuple[str, str]]:
    """``[(path, apt package), ...]`` for text-source files that are not installed."""
    needed = [(WORDNET_DIR / name, "wordnet-base") for name in WORDNET_FILES]
    needed.append((CMU_LEXICON, "festlex-cmu"))
    return [(str(path), package) for path, package in needed if not path.is_file()]


@lru_cache(maxsize=1)
def cmu_words(path: Path = CMU_LEXICON) -> frozenset[str]:
    """All head words of festival's compiled CMU lexicon."""
    words = set()
    with open(path, encoding="latin-1") as lexicon:
        for line in lexicon:
            match = _LEXICON_ENTRY.match(line)
            if match:
                words.add(match.group(1))
    return frozenset(words)


def _clean(example: str, lexicon: frozenset[str]) -> str | None:
    text = " ".join(example.split()).strip(" ,;")
    if not _ALLOWED.match(text) or "''" in text or " '" in text or "' " in text:
        return None
    words = _WORD.findall(text.lower())
    if not MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS:
        return None
    if not all(w in lexicon or (w.endswith("'s") and w[:-2] in lexicon) for w in words):
        return None
    return text[0].upper() + text[1:] + "."


@lru_cache(maxsize=1)
def wordnet_sentences(wordnet_dir: Path = WORDNET_DIR) -> tuple[str, ...]:
    """Unique, filtered WordNet example sentences in a fixed (sorted) order."""
    lexicon = cmu_words()
    sentences = set()
    for name in WORDNET_FILES:
        with open(wordnet_dir / name, encoding="utf-8", errors="replace") as data:
            for line in data:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header, or a synset without gloss
                for example in _QUOTED.findall(line.split("|", 1)[1]):
                    cleaned = _clean(example, lexicon)
                    if cleaned:
                        sentences.add(cleaned)
    return tuple(sorted(sentences))


def make_utterance_text(sentences: tuple[str, ...], rng: np.random.Generator,
                        min_words: int, max_words: int) -> str:
    """Join random sentences until a target word count drawn from ``[min_words, max_words]`` is reached."""
    target = int(rng.integers(min_words, max_words + 1))
    parts, n_words = [], 0
    while n_words < target:
        sentence = sentences[int(rng.integers(len(sentences)))]
        parts.append(sentence)
        n_words += len(sentence.split())
    return " ".join(parts)
