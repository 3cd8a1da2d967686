"""The prefix cache's plan: how many scoring calls of a run use each prefix.

Under prefix sharing (``modint.models.sharing``) a prompt's prefix is the chat header and its image
(or the header alone without an image), so a prefix is named by its ``use_key``. The engine scores
one batch per call, and a batch holds all the conditions of its samples, so a sample's own image
recurs across calls only when the switch pool lends it to other samples; what else recurs is a
perturbation's image (the canvases, the switch photos) and the text-only header. Counting them over the batches still to run lets the
cache keep exactly what a later call reuses (``PrefixCache.expect``).
"""

from __future__ import annotations

from typing import Any, Sequence

from modint.data.sample import SampleError, load_image
from modint.models.sharing import UseKey, use_key
from modint.perturb import apply_condition, get_condition


def prefix_calls(batches: Sequence[Sequence[Any]], seed: int, pools: Any) -> dict[UseKey, list[int]]:
    """For each use key of a perturbation's image (or of no image), the indices of the ``batches``
    (lists of work items with ``sample`` and ``condition``) that score a row with it, ascending. Perturbations
    are seeded per (seed, sample, condition), so these are the images the run will score;
    attack conditions (not scored by the cache's scorer) and samples that fail to load are left out,
    and so is a sample's own image unless the switch pool lends it (``ImageChoice.source_id``)."""
    # Samples whose image the switch pool lends to other samples: their own image may recur.
    lent = {c.source_id for c in getattr(pools, "switch_images", ()) if c.source_id is not None}
    calls: dict[UseKey, list[int]] = {}
    for index, batch in enumerate(batches):
        uses, own = set(), set()
        for item in batch:
            if get_condition(item.condition).attack_space:
                continue
            try:
                perturbed = apply_condition(item.sample, item.condition, seed, pools)
                if perturbed.image is None or perturbed.image is not item.sample.image:  # not its own image
                    uses.add(use_key(load_image(perturbed)))
                elif item.sample.id in lent and item.sample.id not in own:
                    own.add(item.sample.id)
                    uses.add(use_key(load_image(item.sample)))
            except SampleError:  # its batch writes the error record
                continue
        for use in uses:
            calls.setdefault(use, []).append(index)
    return calls
