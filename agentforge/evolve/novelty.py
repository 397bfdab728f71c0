"""The novelty check: a candidate already tried, or a near-duplicate of one, costs no evaluation.

A repeat is the same content hash (the same spec by another route, or the parent itself). A
near-duplicate changes the same components of the same parent to text that embeds within
``distance`` (cosine) of a change already tried, e.g. an instruction differing in a word or two.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentforge.workflow.spec import Candidate

Embed = Callable[[Sequence[str]], list[list[float]]]


def _cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / (na * nb) if na and nb else 1.0


def change_text(candidate: Candidate) -> str:
    """The changed components' new values, as one text to embed."""
    return "\n".join(f"{e.target()}: {json.dumps(e.after, ensure_ascii=False, sort_keys=True, default=str)}"
                     for e in candidate.change.edits)


@dataclass
class Novelty:
    distance: float
    embed: Embed | None = None
    seen: set[str] = field(default_factory=set)
    tried: dict[tuple[str, tuple[str, ...]], list[tuple[str, list[float]]]] = field(default_factory=dict)

    def _embed(self, text: str) -> list[float]:
        if self.embed is None:
            from agentforge.memory.embeddings import HashingEmbedder

            self.embed = HashingEmbedder().embed
        return self.embed([text])[0]

    def remember(self, spec_hash: str) -> None:
        self.seen.add(spec_hash)

    def check(self, spec_hash: str, candidate: Candidate) -> str | None:
        """Why the candidate is not new, or None (and it is remembered as tried)."""
        if spec_hash == candidate.parent_hash:
            return "no change: the candidate is its parent"
        if spec_hash in self.seen:
            return f"a repeat of {spec_hash}, already tried"
        self.seen.add(spec_hash)
        key = (candidate.parent_hash, tuple(sorted(set(candidate.change.targets()))))
        vector = self._embed(change_text(candidate))
        for other, other_vector in self.tried.get(key, []):
            d = _cosine_distance(vector, other_vector)
            if d < self.distance:
                return (f"a near-duplicate of {other} (the same change to {', '.join(key[1])}, cosine distance "
                        f"{d:.3f} < {self.distance})")
        self.tried.setdefault(key, []).append((spec_hash, vector))
        return None
