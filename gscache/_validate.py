"""Shape, dtype and device checks shared by every record's ``validate()`` (a record that breaks its
contract raises GscacheError naming the record, the field and what was expected)."""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import GscacheError


class ShapeChecker:
    """Checks tensors against symbolic shapes, binding each dimension letter on first use.

    >>> c = ShapeChecker("Visible"); c.check("means", means, ("V", 3), torch.float32)
    """

    def __init__(self, owner: str, **dims: int) -> None:
        self.owner = owner
        self.dims: dict[str, int] = dict(dims)
        self.device: torch.device | None = None

    def check(self, name: str, t: Tensor, shape: tuple, dtype: torch.dtype) -> None:
        where = f"{self.owner}.{name}"
        if not isinstance(t, Tensor):
            raise GscacheError(f"{where}: expected a tensor, got {type(t).__name__}")
        if t.dtype != dtype:
            raise GscacheError(f"{where}: expected dtype {dtype}, got {t.dtype}")
        if t.dim() != len(shape):
            raise GscacheError(f"{where}: expected {len(shape)} dims {shape}, got shape {tuple(t.shape)}")
        for axis, (want, got) in enumerate(zip(shape, t.shape)):
            if isinstance(want, int):
                if want != got:
                    raise GscacheError(f"{where}: axis {axis} expected {want}, got {got}")
            elif self.dims.setdefault(want, got) != got:
                raise GscacheError(
                    f"{where}: axis {axis} is {want}={self.dims[want]} elsewhere, got {got}"
                )
        if not t.is_contiguous():
            raise GscacheError(f"{where}: expected a contiguous tensor")
        if self.device is None:
            self.device = t.device
        elif t.device != self.device:
            raise GscacheError(f"{where}: on {t.device}, other fields on {self.device}")
