"""``Method``: what every lightrestore method shares, whatever its networks.

A method is a LightningModule built from its config by :func:`lightrestore.build.build_method`.
Its config names its own parts (one ``model``, or ``f_net`` + ``g_net``, or ``generator`` +
``discriminator``); the builder adds only what every method gets from the task (the
degradation, the number of levels, the measuring convention). This class provides:

* **Restoration and scoring.** :meth:`restore` (``batch -> (B, C, H, W)`` in [0, 1]) is what
  ``evaluate`` and ``restore`` call; :meth:`outputs` returns the named outputs scored per level
  on every test set (``restored`` and ``input`` by default; a method adds its own, e.g.
  ``after_F``, ``G_1``…``G_T``), listed in :attr:`scored_outputs`. Validation scores
  ``restored`` (the difficulty policies read ``val/psnr/level_i``).
* **Optimisation.** ``optimizer`` is one Hydra partial (``optimizer(params=...)``) or a mapping
  ``{network name: partial}`` (one optimiser per network, in that order, for manual
  optimisation); ``scheduler`` likewise (``None``, a partial, or a mapping with the same
  names). ``param_groups`` maps a parameter-name prefix (``"g_net"``, ``"g_net.tail"``) to
  optimiser options (``{"lr": 1e-5}``); the longest matching prefix wins, other parameters
  form the default group. ``frozen`` lists sub-networks that are not trained: no gradient,
  out of the optimisers, and kept in eval mode (BatchNorm statistics unchanged).
* **Records.** Checkpoints carry ``checkpoint["lightrestore"]`` = method name, every
  sub-network's class (:meth:`networks`), the resolved run config.

Methods with several optimisers use Lightning's manual optimisation (as in Lightning's GAN
example): set ``self.automatic_optimization = False`` in ``__init__``, and in
``training_step`` fetch them with :meth:`named_optimizers`, call
``self.manual_backward(loss)`` (so the non-finite loss guard still runs before every update
and DDP still synchronises gradients), ``opt.step()``, ``opt.zero_grad()``, and step the
schedulers yourself (:meth:`step_schedulers` in ``on_train_epoch_end``, after
``super().on_train_epoch_end()``). Per-step values go through :meth:`log_step`. Lightning saves and
restores every optimiser's and scheduler's state, so such a method resumes exactly. A
loss with a schedule (PSPL) follows :attr:`optimizer_steps`, the number of batches that
stepped the optimisers, whatever the number of loss calls per batch.

Logged: ``train/loss_step`` and a method's other per-step values on the steps that reach the
loggers (every ``trainer.log_every_n_steps``: :meth:`log_step`), ``train/loss`` (epoch mean,
logged at the epoch's end); ``val/{psnr,ssim,l1,l2}/level_i``
and ``.../mean``; after testing ``test/{psnr,...}/level_i`` (``restored``),
``test/input_psnr/level_i`` (``input``), ``test/<output>/{psnr,...}/level_i`` for every other
output, all under ``test/<test set>/`` for the test sets other than ``default``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.metrics.image_quality import REGION_MEASURES
from lightrestore.metrics.level_metrics import LevelMetrics
from lightrestore.metrics.output_scores import OutputScores

OptimizerFactory = Callable[..., torch.optim.Optimizer]
MEASURES = ("psnr", "ssim", "l1", "l2")


def _is_metric_container(module: nn.Module) -> bool:
    if isinstance(module, (Metric, OutputScores)):
        return True
    return isinstance(module, (nn.ModuleDict, nn.ModuleList)) and all(
        _is_metric_container(m) for m in module.children()
    )


class Method(LightningModule):
    """Base of every method (see the module docstring).

    Args:
        loss: the configured criterion ``loss(pred, target) -> scalar`` (or ``None`` for a
            method that builds its losses itself).
        optimizer: a Hydra partial ``optimizer(params=...)``, or ``{network: partial}``.
        scheduler: ``None``, a partial ``scheduler(optimizer=...)``, or ``{network: partial}``.
        param_groups: ``{parameter-name prefix: optimiser options}``.
        frozen: names of sub-networks that are not trained.
        degradation: the task's degradation (its ``operator`` is the forward model
            ``W x``); set by the builder, not by method configs.
        n_val_levels, n_test_levels: levels tracked in validation (``N``) and testing
            (``N+1``); set by the builder.
        metric_space, metric_border: ``"rgb"`` (all channels) or ``"y"`` (the Y channel,
            super-resolution) with a border crop; set by the builder from ``task.metrics``.
        metric_quantize: round outputs to 8 bits before measuring (``task.metrics.quantize``,
            on for super-resolution as EDSR/BasicSR/PSPL); set by the builder.
        name: the method's name recorded in checkpoints (default :attr:`method_name`).
        decay_weights_only: the optimiser's ``weight_decay`` applies to conv / linear
            weights only (parameters with two or more dimensions), not to biases, norm
            layers' scales and shifts or other vectors (DL-Net: "L2 weight decay on
            weights"; MMEngine's ``bias_decay_mult=0, norm_decay_mult=0``).
        perceptual_metrics: the optional per-level measures (the ``metrics`` config node,
            e.g. ``{"lpips": {"net": "alex", "backbone_weights": ..., "linear_weights": ...}}``);
            set by the builder. Built once (:func:`lightrestore.metrics.lpips.extra_measures`)
            and shared by every :class:`LevelMetrics` of the method as a plain attribute,
            :attr:`extra_measures`, so no such network enters ``state_dict`` or checkpoints.
    """

    method_name = "method"
    #: the outputs :meth:`outputs` returns, scored per level on every test set
    scored_outputs: tuple[str, ...] = ("restored", "input")
    #: True for methods that need gradients at evaluation (DL-Net's inner loop): the
    #: builder turns Lightning's inference mode off and ``restore`` does not use it
    needs_grad_at_eval = False

    def __init__(
        self,
        loss: nn.Module | None = None,
        optimizer: OptimizerFactory | Mapping[str, OptimizerFactory] | None = None,
        scheduler: Callable[..., Any] | Mapping[str, Callable[..., Any]] | None = None,
        param_groups: Mapping[str, Mapping[str, Any]] | None = None,
        frozen: Sequence[str] | None = None,
        degradation: Any = None,
        n_val_levels: int = 5,
        n_test_levels: int = 6,
        metric_space: str = "rgb",
        metric_border: int = 0,
        metric_quantize: bool = False,
        name: str | None = None,
        decay_weights_only: bool = False,
        perceptual_metrics: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.decay_weights_only = bool(decay_weights_only)
        self.method_name = str(name) if name else type(self).method_name
        if metric_space not in ("rgb", "y"):
            raise ConfigError(f"metric_space must be 'rgb' or 'y', got {metric_space!r}")
        self.metric_space, self.metric_border = metric_space, int(metric_border)
        self.metric_quantize = bool(metric_quantize)
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.param_group_options = {str(k): dict(v) for k, v in (param_groups or {}).items()}
        self.frozen = [str(n) for n in (frozen or [])]
        # a plain attribute (not a sub-module): the forward model, no state of its own
        object.__setattr__(self, "degradation", degradation)
        # the optional measures (LPIPS): one network, a plain attribute, never checkpointed
        extra: dict[str, Callable[[Tensor, Tensor], Tensor]] = {}
        if perceptual_metrics:
            from lightrestore.metrics.lpips import extra_measures

            extra = extra_measures(perceptual_metrics)
        object.__setattr__(self, "extra_measures", extra)
        self.n_test_levels = int(n_test_levels)
        self.train_loss = MeanMetric()  # the epoch mean over ranks (one update per epoch)
        #: this epoch's sum of batch-weighted losses on the device, and their weight
        self._loss_sum: Tensor | None = None
        self._loss_weight = 0
        #: the loss's modules with a schedule (``set_optimizer_step``), found once
        self._scheduled_losses: list[nn.Module] | None = None
        self.val_metrics = self._level_metrics(n_val_levels)
        self.test_scores = OutputScores(
            partial(self._level_metrics, self.n_test_levels), self.scored_outputs, ["default"]
        )
        self.val_results: dict[int, dict[str, float]] = {}
        #: after testing: ``{test set: {output: {level: row}}}``
        self.test_scores_results: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
        self.run_config: dict[str, Any] | None = None  # the resolved config, saved in checkpoints
        #: outputs scored in testing beside :meth:`outputs`, added by callbacks (the weight
        #: average's ``ema``): ``{name: fn(batch) -> (B, C, H, W) in [0, 1]}``
        self.extra_outputs: dict[str, Callable[[RestorationBatch], Tensor]] = {}

    # ------------------------------------------------------------------ parts
    def networks(self) -> dict[str, nn.Module]:
        """The trainable sub-networks by attribute name (not the loss, not the metrics)."""
        return {
            name: m
            for name, m in self.named_children()
            if name != "loss" and not _is_metric_container(m)
        }

    def setup(self, stage: str) -> None:
        """Freezes the ``frozen`` sub-networks; a subclass that overrides it calls ``super()``."""
        self.apply_frozen()

    def apply_frozen(self) -> None:
        """Freeze the sub-networks named in ``frozen``: no gradients, eval mode."""
        nets = self.networks()
        unknown = [n for n in self.frozen if n not in nets]
        if unknown:
            raise ConfigError(
                f"method.frozen names {unknown}, which are not sub-networks of "
                f"{type(self).__name__}: use some of {sorted(nets)}"
            )
        for name in self.frozen:
            nets[name].requires_grad_(False)
            nets[name].eval()
        if self.frozen:  # Lightning warns about modules in eval mode: here they are meant to be
            warnings.filterwarnings(
                "ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training"
            )

    def train(self, mode: bool = True) -> Method:
        super().train(mode)
        nets = self.networks()
        for name in self.frozen:  # Lightning calls train() every epoch: frozen stay in eval
            if name in nets:
                nets[name].eval()
        return self

    def _level_metrics(self, n_levels: int) -> LevelMetrics:
        """Per-level metrics in the configured space: all channels, or the Y channel with
        a border crop (super-resolution's convention); outputs rounded to 8 bits first
        with ``metric_quantize``. The optional measures (:attr:`extra_measures`, e.g.
        LPIPS) see the whole clamped output, all channels, and are shared, not copied."""
        extra = getattr(self, "extra_measures", None) or None
        if self.metric_space == "y":
            from lightrestore.metrics.sr import measure_y

            kw: dict[str, Any] = {"border": self.metric_border}
            if self.metric_quantize:
                kw["quantize"] = True
            return LevelMetrics(n_levels, measure=partial(measure_y, **kw), extra=extra)
        if self.metric_quantize:
            from lightrestore.metrics.image_quality import measure_all

            return LevelMetrics(n_levels, measure=partial(measure_all, quantize=True), extra=extra)
        return LevelMetrics(n_levels, extra=extra)

    @property
    def protocol(self) -> str:
        """How the metrics were measured, for results files."""
        rounded = (
            ", outputs rounded to 8 bits first ((x.clamp(0, 1) * 255).round() / 255)"
            if self.metric_quantize
            else ""
        )
        if self.metric_space == "y":
            return (
                "PSNR/SSIM/L1/L2 on the Y channel (ITU-R BT.601 studio range, as MATLAB's rgb2ycbcr) "
                f"with a border of {self.metric_border} px cropped{rounded}"
            )
        if self.scores_missing_region:
            return (
                f"PSNR/SSIM/L1/L2 on all channels{rounded}; also missing_psnr/missing_l1/"
                "missing_l2, the errors over the removed pixels only (the hole, the deleted "
                "pixels: DL-Net's Table 2 protocol), per image then averaged, and the output "
                "'restored_known', the restoration with the known pixels put back"
            )
        return f"PSNR/SSIM/L1/L2 on all channels{rounded}"

    # ------------------------------------------------------------------ restoring
    def restore(self, batch: RestorationBatch) -> Tensor:
        """The method's restoration of ``batch.degraded``: ``(B, C, H, W)`` in [0, 1]."""
        raise NotImplementedError

    def outputs(self, batch: RestorationBatch) -> dict[str, Tensor]:
        """The named outputs scored per level (keys: :attr:`scored_outputs`), each
        ``(B, C, H, W)`` in [0, 1] like ``batch.clean``."""
        return {"restored": self.restore(batch), "input": self.input_estimate(batch)}

    def inference_spec(self) -> dict[str, Any]:
        """How ``restore`` feeds real images: ``image_size`` (a fixed input side, tiles) or
        ``None``, ``scale`` (output pixels per input pixel), ``channels``."""
        net = next(iter(self.networks().values()), None)
        return {
            "image_size": getattr(net, "image_size", None),
            "scale": int(getattr(net, "scale", 1) or 1),
            "channels": getattr(net, "channels", None),
        }

    @staticmethod
    def input_estimate(batch: RestorationBatch) -> Tensor:
        """The degraded input as an estimate of the clean image (the "do nothing"
        baseline of the results' ``input_psnr``): itself, or for super-resolution its
        MATLAB-bicubic upscaling (the field's "Bicubic" row)."""
        d, size = batch.degraded, tuple(batch.clean.shape[-2:])
        if tuple(d.shape[-2:]) == size:
            return d
        from lightrestore.degradations.resize import imresize

        return imresize(d, scale=size[-1] / d.shape[-1], size=size)

    # ------------------------------------------------------------------ training
    @property
    def optimizer_steps(self) -> int:
        """Batches that have stepped the optimisers so far in this fit (restored on
        resume); one per batch whatever the number of optimisers or loss calls."""
        trainer = self._trainer
        if trainer is None:
            return 0
        loop = trainer.fit_loop.epoch_loop
        return int(getattr(loop, "_batches_that_stepped", trainer.global_step))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Losses with a schedule (PSPL) learn the optimisation step before every batch
        (``set_optimizer_step``). A subclass that overrides this hook calls ``super()``."""
        if self._scheduled_losses is None:
            modules = self.loss.modules() if isinstance(self.loss, nn.Module) else ()
            self._scheduled_losses = [m for m in modules if hasattr(m, "set_optimizer_step")]
        if self._scheduled_losses:
            step = self.optimizer_steps
            for m in self._scheduled_losses:
                m.set_optimizer_step(step)

    def logs_this_step(self) -> bool:
        """True on the training steps whose values reach the loggers (every
        ``trainer.log_every_n_steps``-th step, and the last): per-step values are logged only
        then. Each ``self.log`` call costs Lightning's result collection ~0.1-0.5 ms of host
        time, a large share of a short step on a GPU; values logged on the other steps would
        never be written anyway (the progress bar shows the last logged one)."""
        trainer = self._trainer
        connector = getattr(trainer, "_logger_connector", None) if trainer is not None else None
        try:
            return bool(connector.should_update_logs) if connector is not None else True
        except Exception:  # another Lightning's internals: log every step, as before
            return True

    def log_step(self, values: Mapping[str, Any], prog_bar: bool = False) -> None:
        """Log per-step values (``{key: tensor or float}``, this rank, no sync) on the
        steps that reach the loggers (:meth:`logs_this_step`), nothing on the others."""
        if not self.logs_this_step():
            return
        for key, value in values.items():
            value = value.detach() if isinstance(value, Tensor) else value
            self.log(key, value, prog_bar=prog_bar, on_step=True, on_epoch=False, batch_size=1)

    def log_train_loss(self, loss: Tensor, batch_size: int) -> None:
        """``train/loss_step`` (this rank, no sync, on the logged steps: :meth:`log_step`),
        the loss's own values (PSPL's delta and attention statistics) likewise, and
        ``train/loss``: the epoch mean over ranks, accumulated on the device every step (no
        host read: a torchmetrics update per step would check for NaN on the host, a device
        sync per step on a GPU) and logged once at the end of the epoch (synced then by
        torchmetrics). A non-finite loss makes the epoch mean non-finite."""
        value = loss.detach().float() * batch_size
        if self._loss_sum is None or self._loss_sum.device != value.device:
            self._loss_sum = value
        else:
            self._loss_sum.add_(value)
        self._loss_weight += int(batch_size)
        if not self.logs_this_step():
            return
        self.log_step({"train/loss_step": loss}, prog_bar=True)
        terms = getattr(self.loss, "log_values", None)  # e.g. PSPL's delta and attention stats
        if callable(terms):
            name = getattr(self.loss, "log_name", type(self.loss).__name__)
            self.log_step({f"train/{name}/{key}": value for key, value in terms().items()})

    def on_train_epoch_end(self) -> None:
        """Logs ``train/loss``, the epoch's mean loss over ranks (a subclass that overrides
        this hook calls ``super()``)."""
        if self._loss_sum is not None and self._loss_weight > 0:
            w = self._loss_weight
            self.train_loss.update(self._loss_sum / w, weight=w)
            mean = self.train_loss.compute()  # the weighted mean over ranks (torchmetrics sync)
            self.log("train/loss", mean, on_step=False, on_epoch=True, sync_dist=True)
        self.train_loss.reset()
        self._loss_sum, self._loss_weight = None, 0

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: RestorationBatch, batch_idx: int) -> None:
        self.val_metrics.update(self.restore(batch), batch.clean, batch.level)

    def on_validation_epoch_end(self) -> None:
        self.val_results = self.val_metrics.compute()
        self.val_metrics.reset()
        self._log_levels("val", self.val_results)

    # ------------------------------------------------------------------ test
    @property
    def scores_missing_region(self) -> bool:
        """Inpainting and interpolation (a degradation with an ``observed_mask``, measured
        on all channels): tests also score the missing region only and ``restored_known``,
        the restoration with the known pixels put back (what an inpainting user gets)."""
        return self.metric_space == "rgb" and hasattr(self.degradation, "observed_mask")

    def test_outputs(self) -> tuple[str, ...]:
        """Every output scored in testing: :attr:`scored_outputs` (+ ``restored_known``)."""
        extra = ("restored_known",) if self.scores_missing_region else ()
        return (*self.scored_outputs, *extra, *self.extra_outputs)

    def missing_region(self, batch: RestorationBatch) -> Tensor | None:
        """``(B, 1, H, W)`` in {0, 1}: 1 where the degradation removed the pixel (the hole,
        the deleted pixels), from the batch's parameters; ``None`` for other tasks."""
        if not self.scores_missing_region or batch.clean is None:
            return None
        observed = self.degradation.observed_mask(batch.params, batch.clean.shape, batch.clean.dtype)
        return 1.0 - observed

    def on_test_start(self) -> None:
        """One set of per-level metrics per output × test set (the DataModule's variants,
        e.g. centred holes)."""
        names = list(getattr(self.trainer.datamodule, "test_set_names", None) or ["default"])
        outputs = list(self.test_outputs())
        if names != self.test_scores.test_sets or outputs != self.test_scores.outputs:
            self.test_scores = OutputScores(
                partial(self._level_metrics, self.n_test_levels), outputs, names
            ).to(self.device)

    def test_step(self, batch: RestorationBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_scores.test_sets[dataloader_idx]
        outputs = self.outputs(batch)
        region = self.missing_region(batch)
        if region is not None:  # the known pixels put back
            outputs["restored_known"] = torch.lerp(batch.degraded, outputs["restored"], region)
        for extra, restore in self.extra_outputs.items():
            outputs[extra] = restore(batch)
        self.test_scores.update(name, outputs, batch.clean, batch.level, region)

    def on_test_epoch_end(self) -> None:
        self.test_scores_results = self.test_scores.compute()
        self.test_scores.reset()
        for test_set, by_output in self.test_scores_results.items():
            prefix = "test" if test_set == "default" else f"test/{test_set}"
            for output, levels in by_output.items():
                if output == "restored":
                    self._log_levels(prefix, levels)
                    self._log_missing(prefix, levels)
                elif output == "input":
                    for level, row in levels.items():
                        self.log(f"{prefix}/input_psnr/level_{level}", row["psnr"], sync_dist=True)
                else:
                    self._log_levels(f"{prefix}/{output}", levels)

    # the headline results, as before named outputs existed
    @property
    def test_results(self) -> dict[int, dict[str, float]]:
        """``restored`` on the default test set: ``{level: {"psnr", ...}}``."""
        return self.test_scores_results.get("default", {}).get("restored", {})

    @property
    def test_input_results(self) -> dict[int, dict[str, float]]:
        return self.test_scores_results.get("default", {}).get("input", {})

    @property
    def test_variant_results(self) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
        """``{test set: {"levels": restored, "input": input}}`` for the other test sets."""
        return {
            name: {"levels": by.get("restored", {}), "input": by.get("input", {})}
            for name, by in self.test_scores_results.items()
            if name != "default"
        }

    def _log_missing(self, stage: str, results: dict[int, dict[str, float]]) -> None:
        """``<stage>/missing_{psnr,l1,l2}/level_i``: the missing region's measures."""
        for level, row in results.items():
            for name in REGION_MEASURES:
                if name in row:
                    self.log(f"{stage}/{name}/level_{level}", row[name], sync_dist=True)

    def _log_levels(self, stage: str, results: dict[int, dict[str, float]]) -> None:
        """Log per-level values and their mean over the training levels: psnr, ssim, l1,
        l2 and the optional measures (``lpips``: ``<stage>/lpips/level_i``, ``.../mean``).

        They are already synced over ranks by torchmetrics, hence identical on every
        rank; ``sync_dist=True`` averages identical values (a no-op) and keeps
        Lightning from warning about epoch-level logging in DDP.
        """
        if not results:
            return
        prog = stage == "val"
        # the built-in measures, then the optional ones (LPIPS) the rows carry
        names = [*MEASURES, *(n for n in getattr(self, "extra_measures", {}) or {}
                              if all(n in row for row in results.values()))]  # fmt: skip
        for level, row in results.items():
            for name in names:
                self.log(f"{stage}/{name}/level_{level}", row[name], sync_dist=True)
        train_levels = [lv for lv in results if lv <= self.val_metrics.n_levels]
        for name in names:
            mean = sum(results[lv][name] for lv in train_levels) / max(1, len(train_levels))
            self.log(f"{stage}/{name}/mean", mean, prog_bar=prog and name == "psnr", sync_dist=True)

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self, module: nn.Module | None = None, prefix: str = "") -> list[dict]:
        """The trainable parameters of ``module`` (default: the whole method) in optimiser
        groups: one per ``param_groups`` prefix that matches (its options added), then the
        default group. Frozen and gradient-free parameters are left out."""
        module = self if module is None else module
        keys = sorted(self.param_group_options, key=len, reverse=True)
        groups: dict[str | None, list[nn.Parameter]] = {k: [] for k in keys}
        groups[None] = []
        for name, p in module.named_parameters(prefix=prefix.rstrip(".")):
            if not p.requires_grad:
                continue
            key = next((k for k in keys if name == k or name.startswith(k + ".")), None)
            groups[key].append(p)
        out = [{"params": ps, **self.param_group_options[k]} for k, ps in groups.items()
               if k is not None and ps]  # fmt: skip
        if groups[None]:
            out.append({"params": groups[None]})
        if self.decay_weights_only:  # vectors (biases, norm scales) in twin groups, no decay
            split = []
            for g in out:
                weights = [p for p in g["params"] if p.dim() > 1]
                vectors = [p for p in g["params"] if p.dim() <= 1]
                split += [{**g, "params": weights}] if weights else []
                split += [{**g, "params": vectors, "weight_decay": 0.0}] if vectors else []
            out = split
        return out

    def named_optimizers(self) -> dict[str, Any]:
        """``{network name: LightningOptimizer}`` for methods with one optimiser per
        network (manual optimisation), in the order of the ``optimizer`` mapping."""
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        names = list(self.optimizer_factory) if isinstance(self.optimizer_factory, Mapping) else ["main"]
        return dict(zip(names, opts))

    def step_schedulers(self) -> None:
        """Step every scheduler once (manual optimisation: call at the end of an epoch)."""
        scheds = self.lr_schedulers()
        for s in scheds if isinstance(scheds, list) else [scheds] if scheds else []:
            s.step()

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ConfigError(f"{type(self).__name__} needs an optimizer (method.optimizer)")
        if not isinstance(self.optimizer_factory, Mapping):
            groups = self.parameter_groups()
            if not groups:
                raise ConfigError("every parameter of the method is frozen: nothing to train")
            optimizer = self.optimizer_factory(params=groups)
            if self.scheduler_factory is None:
                return optimizer
            scheduler = self.scheduler_factory(optimizer=optimizer)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
            }
        if self.automatic_optimization:
            raise ConfigError(
                f"{type(self).__name__} has one optimizer per network "
                f"({', '.join(self.optimizer_factory)}): such a method must use manual "
                "optimisation (self.automatic_optimization = False)"
            )
        nets = self.networks()
        optimizers, schedulers = [], []
        for name, factory in self.optimizer_factory.items():
            if name not in nets:
                raise ConfigError(
                    f"method.optimizer has an entry '{name}', which is not a sub-network of "
                    f"{type(self).__name__}: use some of {sorted(nets)}"
                )
            groups = self.parameter_groups(nets[name], prefix=name)
            if not groups:
                raise ConfigError(f"sub-network '{name}' is frozen but has an optimizer")
            optimizers.append(factory(params=groups))
            sched = (self.scheduler_factory or {}).get(name) if isinstance(
                self.scheduler_factory, Mapping) else None  # fmt: skip
            if sched is not None:
                schedulers.append(sched(optimizer=optimizers[-1]))
        return optimizers, schedulers

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        nets = self.networks()
        first = next(iter(nets.values()), None)
        checkpoint["lightrestore"] = {
            "method": self.method_name,
            "method_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "model": type(nets.get("model", first)).__name__ if nets else None,
            "networks": {
                name: f"{type(m).__module__}.{type(m).__qualname__}" for name, m in nets.items()
            },
            "frozen": list(self.frozen),
            "config": self.run_config,
        }

