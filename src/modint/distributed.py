"""The process group a run belongs to: rank, world size and a barrier, shared by the diagnosis
engine and the trainer (from accelerate when launched with several processes)."""

from __future__ import annotations

import os
from typing import Callable


def distributed_state() -> tuple[int, int, Callable[[], None]]:
    """(rank, world size, barrier) from accelerate when launched with several processes;
    (0, 1, a no-op) otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, lambda: None
    import torch
    from accelerate import PartialState

    # Without GPUs accelerate only turns the launched processes into one gloo group when asked
    # for CPU explicitly; otherwise every process would believe it is alone.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != int(os.environ["WORLD_SIZE"]):
        raise RuntimeError(f"launched with WORLD_SIZE={os.environ['WORLD_SIZE']} but accelerate sees "
                           f"{state.num_processes} process(es)")
    return state.process_index, state.num_processes, state.wait_for_everyone
