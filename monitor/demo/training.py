"""The demo's models: an ``lstm_ae`` detector and an ``lstm`` forecaster trained on the simulated normal plant,
kept in ``<workdir>/artifacts`` and reused while the settings that shape them are unchanged.

API::

    artifacts, seconds, trained = train_demo_models(opts, out)   # ({"detector": dir, "forecaster": dir}, s, bool)
    lines = describe_models(artifacts)                            # one line per model, from its manifest

Training data: the demo plant in normal operation (monitor.demo.plant), both units' rows joined by SEAM_ROWS of
NaN, longer than the trainer's forward-fill, so no training window spans the seam. Small sizes, tqdm progress
bars; thresholds calibrated by peaks-over-threshold at 1e-5 per window (the pipeline's backtest tests show why a
1 % quantile would page several times a day). The cache: ``demo-training.json`` beside the artifacts holds the
settings they were trained with (DemoOptions.training_settings); it is removed before training and written after,
so an interrupted training is never reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from monitor.demo.options import TRAIN_SEED, DemoOptions
from monitor.demo.plant import demo_scenario

# Rows of NaN between the two units' training rows: longer than the trainer's forward-fill (max_gap 5).
SEAM_ROWS = 20


def train_demo_models(opts: DemoOptions, out: TextIO) -> tuple[dict[str, Path], float, bool]:
    """Train (or reuse) the demo's artifacts; returns ({name: dir}, seconds spent, whether it trained)."""
    artifacts = opts.workdir / "artifacts"
    stamp = artifacts / "demo-training.json"
    names = {"detector": artifacts / "lstm_ae", **({"forecaster": artifacts / "lstm"} if opts.forecaster else {})}
    settings = opts.training_settings()
    if (
        not opts.retrain
        and stamp.is_file()
        and json.loads(stamp.read_text()) == settings
        and all((p / "manifest.json").is_file() for p in names.values())
    ):
        return names, 0.0, False  # the caller says so

    import torch

    from models.train import train_model
    from models.train_config import TrainConfig
    from simulators import simulate

    started = time.perf_counter()
    normal = simulate(demo_scenario(opts, with_fault=False), duration_s=opts.train_hours * 3600.0, seed=TRAIN_SEED)
    seam = np.full((SEAM_ROWS, len(normal.sensors)), np.nan)
    parts: list[np.ndarray[Any, Any]] = []
    for i in range(len(normal.units)):
        parts += [normal.data[i], seam]
    data = np.concatenate(parts[:-1])
    print(
        f"training on {opts.train_hours:g} simulated hours of normal operation x {len(normal.units)} reactors "
        f"({data.shape[0]} rows, {len(normal.sensors)} sensors), torch threads: {torch.get_num_threads()}",
        file=out,
        flush=True,
    )
    common: dict[str, Any] = {
        "window": opts.window,
        "hidden_size": opts.hidden_size,
        "epochs": opts.epochs,
        "batch_size": 128,
        "train_step": 2,
        "calibration": "pot",
        "target_far": 1e-5,
        "device": opts.device,
        "progress": opts.progress,
    }
    artifacts.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    train_model(
        data, normal.sensors, names["detector"], TrainConfig(kind="lstm_ae", name="lstm_ae", latent_size=8, **common)
    )
    if "forecaster" in names:
        train_model(
            data, normal.sensors, names["forecaster"], TrainConfig(kind="lstm", name="lstm", num_layers=1, **common)
        )
    stamp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return names, time.perf_counter() - started, True


def describe_models(artifacts: dict[str, Path]) -> list[str]:
    """One line per model from its manifest: kind, role, threshold and how it was calibrated, the training run
    (the summary the live view keeps on screen)."""
    lines = []
    for role, path in artifacts.items():
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        threshold = manifest.get("threshold", {})
        figures = manifest.get("training", {}).get("figures", {})
        supported = "" if threshold.get("supported", True) else ", more data needed for its target"
        lines.append(
            f"{manifest.get('kind')} ({role}): threshold {threshold.get('value', float('nan')):.3g} "
            f"({threshold.get('method', '?')}{supported}); {figures.get('epochs_run', '?')} epochs, "
            f"validation loss {figures.get('val_loss', float('nan')):.3g}"
        )
    return lines
