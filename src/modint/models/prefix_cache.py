"""The prefix cache of shared letter scoring (``modint.models.sharing``): key/value caches of
prompt prefixes, bounded by bytes, kept by the run's plan (``PrefixCache.expect``) or, without
one, least recently used out first."""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class PrefixEntry:
    cache: Any  # the model's key/value cache of the prefix (batch 1), never mutated
    length: int
    nbytes: int


UseKey = tuple  # (text only?, image digest): what a prefix depends on besides the fixed chat header


def use_key(image: Any) -> UseKey:
    """What decides a row's prefix (the chat header, then the image, the prompts put first): the
    image's digest, or the text-only header when there is no image; ``PrefixCache.expect`` counts these."""
    return (image is None, image_digest(image))


@dataclass
class PrefixCache:
    """Key/value caches of prompt prefixes, least recently used evicted first once their tensors
    exceed ``max_bytes``. The counters say what the run computed (``positions_computed`` counts
    LLM positions, padding included).

    ``expect(schedule)`` switches to the plan's policy: ``schedule[k]`` lists the indices of the
    ``score`` calls that use prefixes of use key ``k`` (``use_key``), and ``at_call(i)`` says that
    call ``i`` comes next. A prefix is stored only when a later call uses it (``not_admitted``
    counts the others) and dropped once no call to come uses it (``released``); past
    ``max_bytes`` the entry whose next use is furthest away goes first (the optimal choice when
    the future is known)."""

    max_bytes: int = 256 * 2**20
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    not_admitted: int = 0
    released: int = 0
    vision_encodings: int = 0
    positions_computed: int = 0
    nbytes: int = 0
    _entries: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _schedule: dict | None = field(default=None, repr=False)  # use key -> call indices, ascending
    _uses: dict = field(default_factory=dict, repr=False)  # stored key -> its use key
    _now: int = 0  # the index of the call under way

    def expect(self, schedule: dict[UseKey, Sequence[int]]) -> None:
        """Follow the plan from now on: the calls (indices) that use each use key; a use key
        absent from it is used by no call to come. Then ``at_call`` before each call."""
        self._schedule = {k: sorted(set(v)) for k, v in schedule.items() if len(set(v)) > 1}  # one call: none later

    def at_call(self, index: int) -> None:
        """Call ``index`` comes next: drop the prefixes no call from ``index`` on uses."""
        self._now = index
        if self._schedule is None:
            return
        for key in [k for k, use in self._uses.items() if self._next_use(use, index) is None]:
            self._drop(key)
            self.released += 1

    def _next_use(self, use: UseKey | None, start: int) -> int | None:
        """The first call at or after ``start`` that uses ``use`` (None: no such call)."""
        calls = self._schedule.get(use) if self._schedule is not None else None
        if not calls:
            return None
        at = bisect.bisect_left(calls, start)
        return calls[at] if at < len(calls) else None

    def get(self, key: tuple) -> PrefixEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, entry: PrefixEntry, use: UseKey | None = None) -> None:
        if self._schedule is not None and self._next_use(use, self._now + 1) is None:  # no later call uses it
            self.not_admitted += 1
            return
        if entry.nbytes > self.max_bytes:  # would evict everything and still not fit
            return
        self._entries[key] = entry
        self._uses[key] = use
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes:
            self._drop(self._victim())
            self.evictions += 1

    def _victim(self) -> tuple:
        """The entry to evict: the least recently used, or under a plan the one needed last."""
        if self._schedule is None:
            return next(iter(self._entries))
        def next_use(key: tuple) -> float:
            index = self._next_use(self._uses[key], self._now + 1)
            return float("inf") if index is None else index

        return max(self._entries, key=next_use)

    def _drop(self, key: tuple) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
        del self._uses[key]

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions, "entries": len(self),
                "not_admitted": self.not_admitted, "released": self.released,
                "bytes": self.nbytes, "vision_encodings": self.vision_encodings,
                "positions_computed": self.positions_computed}


def image_digest(image: Any) -> str:
    """A hash of a decoded image (the processor turns equal images into equal pixel inputs)."""
    if image is None:
        return ""
    h = hashlib.sha256(f"{image.mode}{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()
