"""The network's fit: seeded minibatch Adam on MSE in scaled units, clipped, stopped early on the validation loss.

API (torch)::

    seed_everything(config.seed)   # random, numpy and torch
    figures = fit_module(module, kind, (x_train, y_train), (x_val, y_val), config)   # step 5 of models/train.py

``fit_module`` leaves the best epoch's weights in the module and returns the figures stored as
``training.figures`` (epochs run, best epoch, losses, history, seconds, early stop).

Apart from models/train.py because it is the one step that runs the network's optimizer (the batches, the loss
of each role, the validation pass, the epoch loop and its bar); the run around it (rows, scaler, calibration,
export) does not change when the fit does, and the pca kind never fits this way.
"""

from __future__ import annotations

import copy
import math
import random
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.kinds import KINDS
from models.train_config import TrainConfig


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(torch.split(order, batch_size))


def _loss(
    module: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor | None, teacher_forcing: float
) -> torch.Tensor:
    """MSE in scaled units: forecast vs next rows, or reconstruction vs input."""
    if KINDS[kind].role == "detector":
        return nn.functional.mse_loss(module(x), x)
    assert y is not None
    pred = module(x, y, teacher_forcing) if kind == "seq2seq" else module(x)
    return nn.functional.mse_loss(pred, y)


def _evaluate(module: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> float:
    module.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for idx in _batches(x.shape[0], max(batch_size, 256), None):
            loss = _loss(module, kind, x[idx], None if y is None else y[idx], 0.0)
            total += float(loss) * len(idx)
            count += len(idx)
    return total / max(count, 1)


def fit_module(
    module: nn.Module,
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor | None],
    validation: tuple[torch.Tensor, torch.Tensor | None],
    config: TrainConfig,
) -> dict[str, Any]:
    """Minibatch Adam with clipping and early stopping; leaves the best epoch's weights in ``module``.

    ``train`` and ``validation``: (X [N, W, S], Y [N, H, S] or None for detectors), scaled, on the
    module's device. Returns the training figures for the manifest.
    """
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    x_train, y_train = train
    x_val, y_val = validation
    best_val, best_epoch, best_state = math.inf, 0, copy.deepcopy(module.state_dict())
    history: list[list[float]] = []
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=f"train {kind}", unit="epoch", disable=not config.progress)
    for epoch in bar:
        module.train()
        total = 0.0
        for idx in _batches(x_train.shape[0], config.batch_size, generator):
            idx_dev = idx.to(x_train.device)
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(
                module, kind, x_train[idx_dev], None if y_train is None else y_train[idx_dev], config.teacher_forcing
            )
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / x_train.shape[0]
        val_loss = _evaluate(module, kind, x_val, y_val, config.batch_size)
        history.append([round(train_loss, 6), round(val_loss, 6)])
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_val:
            best_val, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(module.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    bar.close()
    module.load_state_dict(best_state)
    module.eval()
    return {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "train_loss": history[best_epoch - 1][0] if history else math.nan,
        "val_loss": best_val,
        "history": history,
        "seconds": round(time.perf_counter() - started, 3),
        "early_stopped": len(history) < config.epochs,
    }
