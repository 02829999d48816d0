"""``LiraFork``: LIRA's fork stage (lira.txt §3.1, §4.1).

Each expert learns its own distortion: the training images carry one factor each (blur,
noise or JPEG, ``task=blended_single``, whose level ``i`` is factor ``i``), and every sample
goes through its factor's expert, between an extractor and a decoder that all experts share
(:class:`lightrestore.models.lira.LiraForkNet`). The join stage then loads the experts into
the base network (``init_from_networks: {model.amalgamator.experts: model.experts}``).

Per-level results of this stage are per-factor results (level 1 blur, 2 noise, 3 JPEG).
"""

from __future__ import annotations

from torch import Tensor

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.methods.restoration import RestorationModule


class LiraFork(RestorationModule):
    """Supervised training of ``model`` (a ``LiraForkNet``) routed by the batch's factor.

    The batch must carry ``params["factor"]`` ``(B,)`` (0 blur, 1 noise, 2 JPEG: the
    ``single`` mode of :class:`~lightrestore.degradations.chain.BlendedDistortions`).
    """

    method_name = "lira_fork"
    #: an expert that gets no image of a batch gets no gradient (DDP must look for them)
    has_unused_parameters = True

    def restore(self, batch: RestorationBatch) -> Tensor:
        """``model(degraded, factor)``: ``(B, C, H, W)``, roughly in [0, 1]."""
        factor = batch.params.get("factor")
        if factor is None:
            raise ConfigError(
                "LIRA's fork stage routes every image to the expert of its distortion, and "
                "this batch does not say which (no params['factor']): train it with "
                "task=blended_single; restore real images with the join stage's checkpoint"
            )
        return self.model(batch.degraded, factor.long())
