"""A CPU-only check for device discipline (for tests; the library never enters it itself).

On a GPU, a tensor that modint makes without ``device=`` lands on the CPU while the model's
tensors are on the GPU, and the first op that meets both fails. On a CPU-only machine both sides
are the CPU and nothing shows. Inside ``foreign_default_device()`` every tensor factory called
from modint's own code without an explicit device (``torch.zeros``, ``torch.tensor``,
``torch.rand``, ...) makes its tensor on the ``meta`` device instead, while the model, its
inputs and everything transformers makes stay on the CPU: an op that mixes such a tensor with a
model-side one raises "Tensor on device meta is not on the expected device cpu", as a GPU run
would. Factories called from transformers or torch are left alone (they place their tensors
themselves), as are calls that name a device and ``torch.from_numpy`` (host memory by nature).
A meta tensor has no data, so a host-side value that modint reads back (``.item()``,
``.tolist()``) must be made with an explicit ``device="cpu"``, which says what it is. What the
check cannot see: an explicit ``.cpu()`` or ``device="cpu"`` on a tensor that then meets the
model's (here both sides really are the CPU); such calls are few and kept for host reads.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode


def _factories() -> set:
    """The functions that place a new tensor on the default device (torch's own list, which
    ``torch.set_default_device`` uses, when this torch has it)."""
    try:
        from torch.utils._device import _device_constructors

        return set(_device_constructors())
    except ImportError:
        return {torch.zeros, torch.ones, torch.full, torch.empty, torch.rand, torch.randn, torch.randint,
                torch.randperm, torch.arange, torch.linspace, torch.logspace, torch.eye, torch.tensor,
                torch.as_tensor, torch.scalar_tensor}


def _called_from_modint(depth: int) -> bool:
    name = sys._getframe(depth).f_globals.get("__name__", "")
    return (name == "modint" or name.startswith("modint.")) and name != __name__


class _ForeignDefaultDevice(TorchFunctionMode):
    def __init__(self, device: str):
        super().__init__()
        self.device = torch.device(device)
        self.constructors = _factories()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # depth 2: past this method, to the frame that called the factory (a C function)
        if func in self.constructors and kwargs.get("device") is None and _called_from_modint(2):
            kwargs["device"] = self.device
        return func(*args, **kwargs)


@contextmanager
def foreign_default_device(device: str = "meta") -> Iterator[None]:
    """Tensors that modint makes without naming a device go to ``device`` (see the module)."""
    with _ForeignDefaultDevice(device):
        yield
