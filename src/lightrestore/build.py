"""The one builder: ``train``, ``evaluate`` and ``restore`` assemble runs here.

A method is built from its own config node (``cfg.method``: its ``_target_``, the networks
it names — ``model``, or ``f_net`` + ``g_net``, … —, its loss and optimisers) plus what
every method receives from the task (:func:`task_context`): the degradation (for
``operator``), the number of validation / test levels and the measuring convention. The
builder passes nothing per method.

    objs = build(cfg)                 # degradation, datamodule, method, callbacks, trainer
    method = build_method(cfg)        # the method alone (evaluate, restore)
    init_weights(method, "a.ckpt", networks=["f_net"])   # init_from=
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightrestore.errors import ConfigError, UserError, find_user_error

log = logging.getLogger("lightrestore")

#: method names of older checkpoints and what they are now
LEGACY_METHOD_NAMES = {"sr": "restoration"}


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises a user error hidden inside Hydra's
    ``InstantiationException`` as itself, so its message reaches the user unchanged."""
    import hydra

    try:
        return hydra.utils.instantiate(node, **kwargs)
    except Exception as exc:
        user = find_user_error(exc)
        if user is None or user is exc:
            raise
        raise user from None


def metric_settings(task: Any) -> dict[str, Any]:
    """The task's measuring convention (``task.metrics``: ``space`` rgb|y, ``border``,
    ``quantize``: round outputs to 8 bits before measuring)."""
    metrics = task.get("metrics") or {}
    return {
        "metric_space": metrics.get("space", "rgb"),
        "metric_border": int(metrics.get("border", 0)),
        "metric_quantize": bool(metrics.get("quantize", False)),
    }


def measure_settings(cfg: Any) -> dict[str, Any]:
    """The optional per-level measures of the run (the top-level ``metrics`` node, e.g.
    ``metrics=lpips_alex``: ``metrics.lpips.{net, backbone_weights, linear_weights}``), as
    the method's ``perceptual_metrics``; ``{}`` when none is set, so methods are built
    exactly as without them."""
    from omegaconf import OmegaConf

    node = cfg.get("metrics")
    if not node:
        return {}
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    settings = {str(k): v for k, v in dict(node).items() if v is not None}
    return {"perceptual_metrics": settings} if settings else {}


def task_context(task: Any, degradation: Any) -> dict[str, Any]:
    """What every method receives from the task, whatever its config."""
    ladder = degradation.ladder
    return {
        "degradation": degradation,
        "n_val_levels": ladder.n_levels,
        "n_test_levels": len(ladder.test_levels),
        **metric_settings(task),
    }


def upgrade_config(cfg: Any) -> Any:
    """A config saved in an older checkpoint, in today's layout (in place; returned).

    Older methods did not name their network and loss (``cfg.model`` / ``cfg.loss`` were
    passed in by the CLI) and SR runs used a method called ``sr`` (an optimiser preset).
    """
    from omegaconf import open_dict

    method = cfg.get("method")
    if method is None:
        return cfg
    with open_dict(cfg):
        if "_target_" in method and method._target_.endswith("RestorationModule"):
            if "model" not in method and cfg.get("model") is not None:
                method.model = cfg.model
            if "loss" not in method and cfg.get("loss") is not None:
                method.loss = cfg.loss
        if method.get("name") in LEGACY_METHOD_NAMES:
            method.name = LEGACY_METHOD_NAMES[method.name]
    return cfg


def build_method(cfg: Any, degradation: Any = None) -> Any:
    """The method of ``cfg`` (with its networks, loss and optimiser factories), its
    ``run_config`` set to the resolved ``cfg`` (saved in checkpoints)."""
    from omegaconf import OmegaConf

    from lightrestore.methods.base import Method

    if degradation is None:
        degradation = instantiate(cfg.task.degradation)
    method = instantiate(cfg.method, **task_context(cfg.task, degradation), **measure_settings(cfg))
    if not isinstance(method, Method):
        raise UserError(
            f"method {type(method).__name__} is not a lightrestore method "
            "(a subclass of lightrestore.methods.base.Method)"
        )
    keys = [k for k in cfg if k != "hydra"]
    method.run_config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    return method


def trainer_options(cfg: Any, method: Any) -> dict[str, Any]:
    """Trainer arguments the method decides.

    * No profiler asked for (``trainer.profiler``): :class:`~lightrestore.profiler.NoProfiler`,
      Lightning's default without its per-hook cost.
    * Methods that need gradients at evaluation (DL-Net's inner loop) run validation and
      test without Lightning's inference mode.
    * Methods with one optimiser per network (manual optimisation, e.g. GAN replay) leave
      some networks out of each backward pass, as do methods that say so
      (``has_unused_parameters``: LIRA's warm-up): under DDP they need the detection of
      unused parameters (``ddp_find_unused_parameters_true``).
    """
    out: dict[str, Any] = {}
    if cfg.trainer.get("profiler") is None:  # no profiling: without its per-hook cost
        from lightrestore.profiler import NoProfiler

        out["profiler"] = NoProfiler()
    if getattr(method, "needs_grad_at_eval", False) and cfg.trainer.get("inference_mode", True):
        out["inference_mode"] = False
    several = isinstance(getattr(method, "optimizer_factory", None), Mapping)
    several = several or bool(getattr(method, "has_unused_parameters", False))
    if several and str(cfg.trainer.get("strategy", "")) == "ddp":
        out["strategy"] = "ddp_find_unused_parameters_true"
    return out


def active_callbacks(cfg: Any, callbacks: list[Any], loggers: list[Any]) -> list[Any]:
    """The callbacks that act in this run: the progress bar only when the trainer shows
    one (``trainer.enable_progress_bar``), the wandb results only beside a ``WandbLogger``.
    Lightning calls every hook of every callback on every step, acting or not."""
    from lightning.pytorch.callbacks import ProgressBar
    from lightning.pytorch.loggers import WandbLogger

    from lightrestore.callbacks.wandb_results import WandbResults

    show_bar = bool(cfg.trainer.get("enable_progress_bar", True))
    wandb = any(isinstance(lg, WandbLogger) for lg in loggers)
    return [
        c for c in callbacks
        if (show_bar or not isinstance(c, ProgressBar))
        and (wandb or not isinstance(c, WandbResults))
    ]  # fmt: skip


def build(cfg: Any) -> dict[str, Any]:
    """Instantiate everything a training run needs from a composed config (no training).

    Returns a dict with ``degradation, datamodule, method, model (the method's networks:
    its ``model`` or the dict of them), callbacks, loggers, trainer``.
    """
    degradation = instantiate(cfg.task.degradation)
    datamodule = instantiate(
        cfg.data, degradation=degradation, test_variants=cfg.task.get("test_variants")
    )
    method = build_method(cfg, degradation)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if cfg.get("curriculum") is not None:
        callbacks.append(instantiate(cfg.curriculum))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = active_callbacks(cfg, callbacks, loggers)
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_options(cfg, method)
    )
    nets = method.networks()
    return {
        "degradation": degradation,
        "datamodule": datamodule,
        "model": nets.get("model", nets),
        "method": method,
        "callbacks": callbacks,
        "loggers": loggers,
        "trainer": trainer,
    }


def build_from_checkpoint(
    ckpt: Mapping[str, Any],
    path: str | Path,
    task: Any = None,
    degradation: Any = None,
    weights: str = "raw",
    metrics: Any = None,
) -> Any:
    """The method a checkpoint was trained with, its weights loaded (eval mode).

    Args:
        ckpt: the loaded checkpoint (:func:`lightrestore.storage.checkpoints.load_checkpoint`).
        path: its file, for messages.
        task: the task config to build the method for (default: the checkpoint's own).
        degradation: that task's degradation, when the caller has built it already.
        weights: ``raw`` (the trained weights) or ``ema`` (their moving average, from a run
            trained with ``callbacks=ema``).
        metrics: the optional measures to score with (``evaluate``'s ``metrics`` node, e.g.
            LPIPS), whatever the training run measured; ``None``: none (``restore``).
    """
    from omegaconf import OmegaConf, open_dict

    from lightrestore.storage.checkpoints import CheckpointError, load_weights

    if weights not in ("raw", "ema"):
        raise ConfigError(f"weights must be raw or ema, got {weights!r}")
    if weights == "ema":
        from lightrestore.callbacks.ema import ema_state_dict
        from lightrestore.storage.integrity import first_non_finite

        try:
            ckpt = {**ckpt, "state_dict": ema_state_dict(dict(ckpt), path)}
        except KeyError as e:
            raise CheckpointError(e.args[0]) from None
        bad = first_non_finite(ckpt["state_dict"])
        if bad:
            raise CheckpointError(
                f"checkpoint {path} holds non-finite EMA weights ({bad[1]} in {bad[0]}): "
                "use weights=raw or another checkpoint"
            )
    train_cfg = upgrade_config(OmegaConf.create(ckpt["lightrestore"]["config"]))
    with open_dict(train_cfg):
        if task is not None:
            train_cfg.task = task
        train_cfg.metrics = metrics  # evaluate's own measures, not the training run's
    method = build_method(train_cfg, degradation)
    load_weights(method, ckpt, path)
    method.run_config = ckpt["lightrestore"]["config"]
    return method.eval()


# --------------------------------------------------------------------------- init_from
def _network_state(state: Mapping[str, Any], name: str) -> dict[str, Any]:
    prefix = name + "."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _part(method: Any, networks: Mapping[str, Any], name: str) -> Any:
    """The sub-network ``name`` of ``method`` (a network, or a dotted path into one), or
    ``None``."""
    if name in networks:
        return networks[name]
    head = name.split(".", 1)[0]
    if head not in networks:
        return None
    try:
        return method.get_submodule(name)
    except AttributeError:
        return None


def init_weights(
    method: Any,
    path: str | Path,
    networks: Sequence[str] | Mapping[str, str] | None = None,
    strict: bool = True,
) -> list[str]:
    """Load sub-network weights from a lightrestore checkpoint before training
    (``init_from=``): fine-tuning, or chaining the stages of a multi-stage method.

    Args:
        method: the freshly built method.
        path: the checkpoint.
        networks: ``None`` (every sub-network of ``method``), a list of names (the same
            name in both), or ``{this method's network: the checkpoint's network}``. A name
            may be a dotted path to a part of a network on either side, e.g.
            ``{"model.amalgamator.experts": "model.experts"}`` (LIRA's join stage loads the
            fork stage's experts into its base network).
        strict: every parameter and buffer of each network must be in the checkpoint,
            with the same shape, and nothing more.

    Returns the names of the networks loaded. Raises
    :class:`~lightrestore.storage.checkpoints.CheckpointError` naming the network and the
    mismatching keys.
    """
    from lightrestore.storage.checkpoints import CheckpointError, load_checkpoint, load_into

    ckpt = load_checkpoint(path)
    state = ckpt["state_dict"]
    mine = method.networks()
    if networks is None:
        pairs = {n: n for n in mine}
    elif isinstance(networks, Mapping):
        pairs = {str(k): str(v) for k, v in networks.items()}
    else:
        pairs = {str(n): str(n) for n in networks}
    unknown = [n for n in pairs if _part(method, mine, n) is None]
    if unknown:
        raise ConfigError(
            f"init_from_networks names {unknown}, which this method ({type(method).__name__}) "
            f"does not have: use some of {sorted(mine)}"
        )
    theirs = sorted({k.split(".", 1)[0] for k in state})
    for target, source in pairs.items():
        weights = _network_state(state, source)
        if not weights:
            raise CheckpointError(
                f"checkpoint {path} has no network '{source}' (it has {theirs}): name the "
                f"checkpoint's network with init_from_networks={{{target}: <name>}}"
            )
        part = _part(method, mine, target)
        problem = load_into(part, weights, strict)
        if problem:
            raise CheckpointError(
                f"init_from: network '{source}' of {path} does not fit this run's '{target}' "
                f"({type(part).__name__}): {problem}; use a checkpoint of the same "
                "architecture, or init_from_strict=false to allow missing keys"
            )
    log.info("init_from %s: loaded %s", path, ", ".join(f"{t}<-{s}" for t, s in pairs.items()))
    return list(pairs)
