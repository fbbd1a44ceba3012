"""Choose the device once, from configuration (STYLE.md section 8).

Models never call ``torch.cuda.is_available()`` themselves: the caller resolves the
device here and passes it in.

API:
    resolve_device(choice) -> torch.device     # training and the torch loader (imports torch)
    serving_device(choice) -> "cpu" | torch.device
        # the service: "cpu" (a plain string, no torch imported) unless CUDA is asked for or, for "auto",
        # an NVIDIA device is present; then torch decides, as resolve_device does
    nvidia_present() -> bool                   # /proc/driver/nvidia/gpus entries or /dev/nvidia0, without torch

torch is imported only when a CUDA device may be there: on the CPU the serving path runs ONNX Runtime
(models/serving.py) and never loads torch (192 MiB of the service's memory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")

# What the NVIDIA kernel driver creates for each GPU it drives; without either no CUDA device can be there.
NVIDIA_GPUS_DIR = Path("/proc/driver/nvidia/gpus")
NVIDIA_DEVICE = Path("/dev/nvidia0")

# Union, not |: at run time "torch.device" is only a string here, and str | "..." is a TypeError.
ServingDevice = Union[str, "torch.device"]


def nvidia_present() -> bool:
    """Whether this machine shows an NVIDIA GPU (driver entries or the device node), decided without torch."""
    try:
        if NVIDIA_GPUS_DIR.is_dir() and any(NVIDIA_GPUS_DIR.iterdir()):
            return True
    except OSError:
        pass
    return os.path.exists(NVIDIA_DEVICE)


def _text(choice: object) -> str:
    return str(choice).strip().lower()


def resolve_device(choice: str | torch.device = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) to a ``torch.device``.

    ``"auto"`` picks CUDA when a CUDA device is present, else the CPU. Asking for CUDA on a
    machine without it raises ``ValueError`` (a configuration error, not a silent CPU fallback).
    """
    import torch

    text = str(choice) if isinstance(choice, torch.device) else _text(choice)
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


def is_cpu(device: ServingDevice) -> bool:
    """Whether a resolved device (``"cpu"`` or a torch.device) is the CPU."""
    return _text(device) == "cpu"


def serving_device(choice: ServingDevice = "auto") -> ServingDevice:
    """The scoring device for the service: ``"cpu"`` (a string, torch not imported) or a CUDA torch.device.

    "cpu" is the CPU at once; "auto" is the CPU without torch when no NVIDIA device is present, else what
    resolve_device says (the CPU as the string "cpu"); "cuda" / "cuda:N" go to resolve_device (ValueError
    without CUDA). Anything else is a ValueError.
    """
    text = _text(choice)
    if text == "cpu" or (text == "auto" and not nvidia_present()):
        return "cpu"
    if text not in ("auto", "cuda") and not text.startswith("cuda:"):
        raise ValueError(f"unknown device {choice!r}: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    device = resolve_device(choice)
    return "cpu" if device.type == "cpu" else device
