"""The split-model contract ``f = h ∘ g`` (DL-Net, Guo et al.) that any backbone can follow.

A restoration network ``f`` is split at its last hidden representation:

* ``g = model.features``: ``x -> z``, everything up to the last hidden representation,
  taken **before** its activation (for BatchNorm models, the normalised tensor the
  activation would take);
* ``h = model.head``: ``(z, x) -> image``, the backbone's last layer: that activation,
  then **one** convolution / transposed convolution, plus whatever *input-dependent*
  output mapping the model has (a global residual ``+ bicubic(x)``, LapSRN's upsampled
  image, a ``[-1, 1] -> [0, 1]`` map, EDSR's added mean). Where an architecture's last
  stage cannot be a single conv, the model's docstring says what ``h`` is and why.
* ``forward(x) == head(features(x), x)``.

DL-Net optimises ``z`` for a fixed ``x`` (a few Adam steps on the likelihood of
``h(z)``), so ``head`` is called many times with different ``z`` for one ``x``: nothing
may be stashed on the module between ``features`` and ``head``, ``head`` must be
differentiable in ``z`` (no ``detach``) and must not modify ``z`` in place.

:func:`check_split` verifies a model against the contract and raises a clear
``TypeError`` / ``ValueError`` when it does not follow it.
"""

from __future__ import annotations

import inspect
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["SplitModel", "check_split"]


@runtime_checkable
class SplitModel(Protocol):
    """A backbone split as ``forward(x) == head(features(x), x)``.

    Shapes and ranges (``B`` batch, ``C`` image channels):

    * ``x``: the network input, ``(B, C, H, W)`` in ``[0, 1]`` (the degraded image; for
      super-resolution the LR image ``(B, C, h, w)``).
    * ``z = features(x)``: the last hidden representation before its activation, a
      tensor with the batch first, for the convolutional backbones ``(B, D, H', W')``
      (``H', W'`` the grid of the last hidden layer: the input grid, the HR grid, or a
      coarser decoder grid). Unbounded real values (pre-activation). It carries the
      autograd graph of ``g`` (``requires_grad`` when the parameters do).
    * ``head(z, x)``: the output image ``(B, C, H_out, W_out)`` — the same as
      ``forward(x)`` when ``z = features(x)``. In ``[0, 1]`` for models with a bounded
      output map (ODL: tanh mapped to ``[0, 1]``), *roughly* in ``[0, 1]`` and unclamped
      for residual / skip models (the SR backbones). ``x`` is the same input that
      ``features`` saw; models without an input-dependent output mapping ignore it,
      but it is always passed, so callers need not know the model.

    ``isinstance(model, SplitModel)`` only checks that the three methods exist (a
    ``runtime_checkable`` protocol does not see signatures); use :func:`check_split`
    for the full contract.
    """

    def features(self, x: Tensor) -> Tensor:
        """``g``: input image -> last hidden representation, pre-activation."""
        ...

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """``h``: ``(z, input image)`` -> output image (activation + one conv + output map)."""
        ...

    def forward(self, x: Tensor) -> Tensor:
        """``head(features(x), x)``."""
        ...


_METHODS = ("features", "head", "forward")


def _name(model: object) -> str:
    return type(model).__name__


def _check_methods(model: object) -> None:
    missing = [m for m in _METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(
            f"{_name(model)} does not follow the SplitModel contract: missing "
            + ", ".join(f"`{m}`" for m in missing)
            + " (needs features(x) -> z, head(z, x) -> image, forward(x) == head(features(x), x))"
        )
    for method, args in (("features", ("x",)), ("head", ("z", "x"))):
        fn = getattr(model, method)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins / C extensions: nothing to inspect
            continue
        try:
            sig.bind(*args)
        except TypeError as err:
            raise TypeError(
                f"{_name(model)}.{method}{sig} cannot be called as "
                f"{method}({', '.join(args)}): the SplitModel contract is "
                "features(x) -> z and head(z, x) -> image (pass x even where it is unused)"
            ) from err


def _as_tensor(value: object, what: str, model: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{_name(model)}.{what} returned {type(value).__name__}, not a Tensor")
    return value


def check_split(
    model: SplitModel,
    x: Tensor,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    check_grad: bool = True,
) -> None:
    """Raise unless ``model`` follows the :class:`SplitModel` contract on input ``x``.

    Checks, in order:

    1. ``features``, ``head`` and ``forward`` exist and ``head`` accepts ``(z, x)``
       (``TypeError`` otherwise — e.g. the old ``head(z)``);
    2. ``features`` and ``head`` return tensors, ``head`` leaves ``z`` unchanged (no
       in-place activation), and ``model(x)`` equals ``head(features(x), x)`` in shape
       and within ``atol + rtol·|value|`` (``ValueError`` otherwise, with the largest
       difference);
    3. with ``check_grad``: ``head``'s output depends differentiably on ``z``: the
       gradient of its sum w.r.t. a leaf ``z`` exists and is nonzero (``ValueError``
       otherwise — ``head`` detaches or ignores ``z``).

    The model is run as it is (train or eval mode): put models with stochastic layers
    (dropout) in eval mode first. BatchNorm running statistics and other buffers that
    the extra forward passes update are restored afterwards.
    """
    _check_methods(model)
    buffers = list(model.buffers()) if isinstance(model, nn.Module) else []
    saved = [b.detach().clone() for b in buffers]
    try:
        with torch.no_grad():
            y = _as_tensor(model(x) if callable(model) else model.forward(x), "forward", model)
            z = _as_tensor(model.features(x), "features", model)
            z_before = z.clone()
            y_split = _as_tensor(model.head(z, x), "head", model)
            if not torch.equal(z, z_before):
                raise ValueError(
                    f"{_name(model)}.head modified z in place: DL-Net calls head "
                    "repeatedly on the same z (use torch.relu(z), not relu_ / inplace=True)"
                )
            if y_split.shape != y.shape:
                raise ValueError(
                    f"{_name(model)}: head(features(x), x) has shape {tuple(y_split.shape)}, "
                    f"forward(x) has shape {tuple(y.shape)}"
                )
            if not torch.allclose(y_split, y, atol=atol, rtol=rtol, equal_nan=True):
                diff = float((y_split.double() - y.double()).abs().max())
                raise ValueError(
                    f"{_name(model)}: forward(x) differs from head(features(x), x) "
                    f"(max abs difference {diff:.3g} > atol {atol:g}, rtol {rtol:g})"
                )
        if check_grad:
            with torch.enable_grad():
                z_leaf = model.features(x).detach().requires_grad_(True)
                out = model.head(z_leaf, x)
                if not out.requires_grad:
                    raise ValueError(
                        f"{_name(model)}.head's output does not depend differentiably on z "
                        "(detached or ignored)"
                    )
                (grad,) = torch.autograd.grad(out.sum(), z_leaf, allow_unused=True)
            if grad is None or not bool(grad.ne(0).any()):
                raise ValueError(
                    f"{_name(model)}.head ignores z: the gradient of its output w.r.t. z is "
                    + ("absent" if grad is None else "zero")
                )
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved, strict=True):
                b.copy_(s)
