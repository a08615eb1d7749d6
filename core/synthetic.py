"""Synthetic text of BookCorpus's shape, for the offline demo and for benchmarks.

BookCorpus rows are single lower-cased sentences from novels, ~13 words on average, with
punctuation split off by spaces. This grammar makes rows of that shape; they are not real
prose, but they have enough structure that a small model's loss falls visibly.
"""

from __future__ import annotations

import random

NAMES = ["anna", "marcus", "lily", "jake", "elena", "tom", "sara", "daniel", "nora", "leo", "mia", "adam",
         "claire", "owen", "ruby", "ethan", "grace", "isaac", "zoe", "victor"]
PRONOUNS = ["he", "she", "they", "i", "we"]
VERBS_PAST = ["looked at", "walked toward", "smiled at", "turned to", "waited for", "reached for", "stared at",
              "thought about", "listened to", "pulled away from", "laughed at", "glanced at", "ran past", "followed"]
OBJECTS = ["the door", "the window", "the old car", "her phone", "the letter", "the fire", "the river", "his coffee",
           "the map", "the empty street", "the house", "the dark hallway", "the table", "the small boat", "the sky"]
PLACES = ["in the kitchen", "at the station", "by the lake", "in the garden", "on the roof", "at the bar",
          "in the car", "outside the school", "near the bridge", "in the hospital", "at the edge of the forest"]
TIMES = ["that night", "the next morning", "after a while", "for a long moment", "before dawn", "a minute later",
         "once again", "at last", "without a word", "all of a sudden"]
FEELINGS = ["tired", "angry", "afraid", "happy", "confused", "nervous", "relieved", "cold", "lost", "calm"]
SAID = ["said", "whispered", "asked", "shouted", "muttered", "replied"]
LINES = ["i do n't know", "where are you going", "we need to talk", "it 's not your fault", "come with me",
         "what happened here", "i 'm sorry", "leave me alone", "are you sure", "you should have told me",
         "it 's going to be fine", "i never wanted this", "how long have you been here", "do n't look back"]


def _subject(rng: random.Random) -> str:
    return rng.choice(NAMES) if rng.random() < 0.6 else rng.choice(PRONOUNS)


def _sentence(rng: random.Random) -> str:
    kind = rng.random()
    s = _subject(rng)
    if kind < 0.35:
        out = f"{s} {rng.choice(VERBS_PAST)} {rng.choice(OBJECTS)} {rng.choice(PLACES)} ."
    elif kind < 0.55:
        out = f"`` {rng.choice(LINES)} , '' {s} {rng.choice(SAID)} ."
    elif kind < 0.7:
        out = f"{rng.choice(TIMES)} , {s} felt {rng.choice(FEELINGS)} and {rng.choice(VERBS_PAST)} {rng.choice(OBJECTS)} ."
    elif kind < 0.85:
        out = f"{s} was {rng.choice(FEELINGS)} , but {_subject(rng)} {rng.choice(VERBS_PAST)} {rng.choice(OBJECTS)} anyway ."
    else:
        out = f"`` {rng.choice(LINES)} ? '' {s} {rng.choice(SAID)} {rng.choice(TIMES)} ."
    return out


def bookcorpus_like_rows(n: int, seed: int = 0) -> list[str]:
    """`n` BookCorpus-shaped sentences, the same for the same seed."""
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(n)]
