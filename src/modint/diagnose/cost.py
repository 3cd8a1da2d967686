"""What a diagnosis costs, counted from the outside of any scoring path (for
``benchmarks/diagnose_throughput.py``): LLM positions computed, distinct token prefixes, images
through the vision tower, matmul FLOPs, and this machine's fp32 matmul peak.

Nothing here changes what a model computes: hooks read shapes, a wrapped ``encode`` reads the
rows it returns. Counts are plain attributes of the counter objects (no module state).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Hashable, Iterator, Sequence

import torch

from modint.models.prefix_cache import image_digest

VISION_MODULE_NAMES = ("vision_tower", "visual", "vision_model")


class PrefixTrie:
    """Distinct prefixes of key sequences: a sequence of n keys adds one node per prefix not
    seen before, so ``nodes`` is the number of positions a model must compute at least once if
    each distinct prefix were computed exactly once (a causal LM's state at a position depends
    on that position's prefix only)."""

    def __init__(self) -> None:
        self._root: dict = {}
        self.nodes = 0
        self.positions = 0  # keys added, repeats included

    def add(self, keys: Sequence[Hashable]) -> None:
        node = self._root
        for key in keys:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
                self.nodes += 1
            node = child
        self.positions += len(keys)


def row_keys(token_ids: Sequence[int], image_token_id: int, image_key: str | None) -> list[Hashable]:
    """The keys of one row's real tokens: the token id, except at image-token positions, which
    are keyed by the image and the index of the image token (the placeholder id is the same for
    every image; the positions' content is the image's)."""
    keys: list[Hashable] = []
    k = 0
    for token in token_ids:
        if token == image_token_id and image_key is not None:
            keys.append((image_key, k))
            k += 1
        else:
            keys.append(int(token))
    return keys


class DistinctPositions:
    """A prefix trie per family over every row ``adapter.encode`` returns while ``watch`` is
    active; with ``total``, also one over all rows under the key "all"."""

    def __init__(self, total: bool = False) -> None:
        self.tries: dict[str, PrefixTrie] = {}
        self.total = total

    def add_batch(self, batch: Any, image_token_id: int) -> None:
        ids = batch.inputs["input_ids"]
        mask = batch.inputs["attention_mask"].bool()
        for i, sample in enumerate(batch.samples):
            real = ids[i][mask[i]].tolist()  # padding on either side drops out
            key = image_digest(sample.image) if sample.image is not None else None
            keys = row_keys(real, image_token_id, key)
            self.tries.setdefault(sample.family, PrefixTrie()).add(keys)
            if self.total:
                self.tries.setdefault("all", PrefixTrie()).add(keys)

    @contextmanager
    def watch(self, adapter: Any) -> Iterator["DistinctPositions"]:
        original = adapter.encode

        def encode(*args: Any, **kwargs: Any):
            batch = original(*args, **kwargs)
            self.add_batch(batch, adapter.image_token_id)
            return batch

        adapter.encode = encode  # an instance attribute shadows the method for this adapter only
        try:
            yield self
        finally:
            del adapter.encode

    def counts(self) -> dict[str, int]:
        return {family: trie.nodes for family, trie in sorted(self.tries.items())}


def _first_tensor(args: tuple, kwargs: dict, names: Sequence[str]) -> torch.Tensor | None:
    for name in names:
        if isinstance(kwargs.get(name), torch.Tensor):
            return kwargs[name]
    return next((a for a in args if isinstance(a, torch.Tensor)), None)


class PositionCounter:
    """LLM positions computed: B x L of every call to the language model (padding included;
    with a KV cache, a call on a suffix counts the suffix only)."""

    def __init__(self) -> None:
        self.positions = 0
        self.calls = 0

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        x = _first_tensor(args, kwargs, ("inputs_embeds", "input_ids"))
        if x is not None:
            self.positions += int(x.shape[0]) * int(x.shape[1])
            self.calls += 1

    @contextmanager
    def watch(self, adapter: Any) -> Iterator["PositionCounter"]:
        handle = adapter.language_model().register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


def vision_module(model: Any) -> torch.nn.Module | None:
    """The model's vision tower: the outermost submodule named like one (LLaVA's
    ``vision_tower``, Qwen's ``visual``, BLIP's ``vision_model``), or None."""
    found = [(name.count("."), name, module) for name, module in model.named_modules()
             if name.rsplit(".", 1)[-1] in VISION_MODULE_NAMES]
    return min(found, key=lambda t: (t[0], t[1]))[2] if found else None


class VisionCounter:
    """Images (tiles, for tiling families) through the vision tower: the leading dimension of
    its pixel input, or the number of image grids where pixels come flattened (Qwen)."""

    def __init__(self) -> None:
        self.images = 0

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        grid = kwargs.get("grid_thw")
        if isinstance(grid, torch.Tensor):
            self.images += int(grid.shape[0])
            return
        pixels = _first_tensor(args, kwargs, ("pixel_values", "hidden_states"))
        if pixels is not None:
            self.images += int(pixels.shape[0])

    @contextmanager
    def watch(self, adapter: Any) -> Iterator["VisionCounter"]:
        tower = vision_module(adapter.model)
        if tower is None:
            raise ValueError(f"model {adapter.name}: no vision tower found (looked for {', '.join(VISION_MODULE_NAMES)})")
        handle = tower.register_forward_pre_hook(self._hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


def _sdpa_flops(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


@contextmanager
def count_flops() -> Iterator[Any]:
    """torch's FlopCounterMode (matmuls, convolutions and attention) with CPU attention counted
    too: its fused kernel is not in torch's table, so it would count as zero."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        mapping[cpu_sdpa] = _sdpa_flops
    with FlopCounterMode(display=False, custom_mapping=mapping) as mode:
        yield mode


def matmul_peak_flops(size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """This machine's fp32 matmul rate: the best of ``repeats`` products of two random ``size`` x
    ``size`` matrices (2 size^3 FLOPs each), on torch's current thread count, as (FLOP per wall
    second, FLOP per CPU second of this process). The second is the one to trust where other
    jobs share the cores: time they take is not counted."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up: thread pool and allocator
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu_start)
    flops = 2.0 * size ** 3
    return flops / best_wall, flops / max(best_cpu, 1e-9)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
