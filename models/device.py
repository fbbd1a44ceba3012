"""Choose the torch device once, from configuration (STYLE.md section 8).

Models never call ``torch.cuda.is_available()`` themselves: the caller resolves the
device here and passes it in.
"""

from __future__ import annotations

import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(choice: str | torch.device = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) to a ``torch.device``.

    ``"auto"`` picks CUDA when a CUDA device is present, else the CPU. Asking for CUDA on a
    machine without it raises ``ValueError`` (a configuration error, not a silent CPU fallback).
    """
    text = str(choice) if isinstance(choice, torch.device) else str(choice).strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r} requested but CUDA is not available on this machine")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {text!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    raise ValueError(f"unknown device {choice!r}: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
