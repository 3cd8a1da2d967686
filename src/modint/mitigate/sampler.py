"""Modality-quota batches: every batch holds a fixed number of anchors per family.

A plain ``torch.utils.data.Sampler`` over dataset indices (use it as ``batch_sampler=`` of a
DataLoader), so it works outside modint too. Each rank takes a disjoint shard of every family;
the order is reshuffled every epoch from (seed, epoch, family); an epoch ends when the scarcest
family (relative to its quota) runs out, as published.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from modint.seeding import derive_seed

DEFAULT_QUOTAS = {"image_heavy": 2, "text_heavy": 2, "vqa": 4}  # of 8 anchors per device, as published


class QuotaBatchSampler(Sampler[list[int]]):
    def __init__(self, families: Sequence[str], quotas: dict[str, int] | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        quotas = dict(DEFAULT_QUOTAS if quotas is None else quotas)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if any(q < 0 for q in quotas.values()):
            raise ValueError(f"quotas must be >= 0: {quotas}")
        present = set(families)
        # A family the data lacks cannot fill its quota: drop it rather than yield no batch at all.
        self.quotas = {f: q for f, q in quotas.items() if q > 0 and f in present}
        if not self.quotas:
            raise ValueError(f"no family of the quotas {quotas} is in the data (families: {sorted(present)})")
        self.by_family = {f: [i for i, fam in enumerate(families) if fam == f] for f in self.quotas}
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard(self, family: str) -> list[int]:
        rng = np.random.default_rng(derive_seed("quota-sampler", self.seed, self.epoch, family))
        order = [self.by_family[family][i] for i in rng.permutation(len(self.by_family[family]))]
        usable = len(order) - len(order) % self.world_size  # equal shards: ranks step together
        return order[:usable][self.rank::self.world_size]

    def __len__(self) -> int:
        return min((len(self.by_family[f]) // self.world_size) // q for f, q in self.quotas.items())

    def __iter__(self) -> Iterator[list[int]]:
        shards = {f: self._shard(f) for f in self.quotas}
        for b in range(len(self)):
            batch: list[int] = []
            for f, q in self.quotas.items():
                batch.extend(shards[f][b * q:(b + 1) * q])
            yield batch
