"""The model kinds and their seed sizes, without torch: what a manifest may name, and what each kind is.

``KINDS[kind]``: the kind's role ("forecaster" | "detector"), the seed's hyperparameters (examples 1-8 of the
seed text), its default horizon and whether it has attention. models.networks builds the ``nn.Module`` of a
kind; this module only describes them, so the torch-free serving path (models.manifest, models.onnx_model) can
validate a manifest without importing torch.

``tensor_shapes(kind, n_sensors, window, horizon, **hyperparameters)``: the names and shapes of the state dict
models.networks.build_model makes for those values, computed without building it (torch's LSTM / GRU / RNN
parameter layout: ``weight_ih_l{k}[_reverse]`` [gates x D, input], ``weight_hh_l{k}`` [gates x D, D], two biases
[gates x D]; gates 4 for LSTM, 3 for GRU, 1 for RNN). tests/models/test_manifest.py checks it against the real
modules for every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KindSpec:
    """What a model kind is: its role, whether it forecasts H > 1 steps, and the seed's sizes."""

    role: str
    seed_hyperparameters: dict[str, Any]
    default_horizon: int
    has_attention: bool = False


# The seed's sizes per kind (examples 1-8). lstm's deeper single-step configuration
# (example 5) is SEED_PRESETS["lstm_deep"].
KINDS: dict[str, KindSpec] = {
    "rnn": KindSpec("forecaster", {"hidden_size": 32, "num_layers": 1, "dropout": 0.0}, 1),
    "lstm": KindSpec("forecaster", {"hidden_size": 64, "num_layers": 2, "dropout": 0.0}, 1),
    "gru": KindSpec("forecaster", {"hidden_size": 64, "num_layers": 2, "dropout": 0.0}, 1),
    "seq2seq": KindSpec("forecaster", {"hidden_size": 128, "num_layers": 2, "dropout": 0.0}, 10),
    "attention_lstm": KindSpec("forecaster", {"hidden_size": 128, "num_layers": 2, "dropout": 0.0}, 1, True),
    "bilstm": KindSpec("detector", {"hidden_size": 64, "num_layers": 2, "dropout": 0.0}, 0),
    "lstm_ae": KindSpec("detector", {"hidden_size": 64, "num_layers": 1, "latent_size": 8, "dropout": 0.0}, 0),
}
SEED_PRESETS: dict[str, dict[str, Any]] = {
    "lstm_deep": {"kind": "lstm", "hidden_size": 128, "num_layers": 3, "dropout": 0.2},
}
DEFAULT_DETECTOR = "lstm_ae"

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}

Shapes = dict[str, tuple[int, ...]]


def _recurrent(prefix: str, cell: str, inputs: int, hidden: int, layers: int, bidirectional: bool = False) -> Shapes:
    """The parameters of a torch nn.RNN / nn.LSTM / nn.GRU (bias=True, batch_first irrelevant), named under prefix."""
    rows = _GATES[cell] * hidden
    directions = ("", "_reverse") if bidirectional else ("",)
    shapes: Shapes = {}
    for layer in range(layers):
        width = inputs if layer == 0 else hidden * len(directions)
        for suffix in directions:
            shapes[f"{prefix}.weight_ih_l{layer}{suffix}"] = (rows, width)
            shapes[f"{prefix}.weight_hh_l{layer}{suffix}"] = (rows, hidden)
            shapes[f"{prefix}.bias_ih_l{layer}{suffix}"] = (rows,)
            shapes[f"{prefix}.bias_hh_l{layer}{suffix}"] = (rows,)
    return shapes


def _linear(prefix: str, inputs: int, outputs: int) -> Shapes:
    return {f"{prefix}.weight": (outputs, inputs), f"{prefix}.bias": (outputs,)}


def tensor_shapes(kind: str, n_sensors: int, window: int, horizon: int, **hyperparameters: Any) -> Shapes:
    """The state dict's tensor names and shapes of ``build_model(kind, ...)`` (see the module docstring).

    ``window`` is not a parameter of any tensor (lstm_ae keeps it as an attribute): it is taken for the same
    signature as build_model. Unknown kinds or hyperparameters are a ValueError, as in build_model.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}: expected one of {', '.join(KINDS)}")
    params = {**KINDS[kind].seed_hyperparameters, **hyperparameters}
    unknown = sorted(set(params) - set(KINDS[kind].seed_hyperparameters))
    if unknown:
        raise ValueError(f"hyperparameters {unknown} are not parameters of kind {kind!r}")
    hidden, layers, s = int(params["hidden_size"]), int(params["num_layers"]), n_sensors
    if kind in _GATES:
        return {**_recurrent("rnn", kind, s, hidden, layers), **_linear("head", hidden, max(horizon, 1) * s)}
    if kind == "seq2seq":
        return {
            **_recurrent("encoder", "lstm", s, hidden, layers),
            **_recurrent("decoder", "lstm", s, hidden, layers),
            **_linear("head", hidden, s),
        }
    if kind == "attention_lstm":
        return {
            **_recurrent("lstm", "lstm", s, hidden, layers),
            **_linear("attention", hidden, 1),
            **_linear("head", hidden, s),
        }
    if kind == "bilstm":
        return {**_recurrent("bilstm", "lstm", s, hidden, layers, bidirectional=True), **_linear("head", 2 * hidden, s)}
    latent = int(params["latent_size"])
    return {
        **_recurrent("encoder", "lstm", s, hidden, layers),
        **_linear("to_latent", hidden, latent),
        **_linear("latent_to_state", latent, 2 * layers * hidden),
        **_recurrent("decoder", "lstm", latent, hidden, layers),
        **_linear("head", hidden, s),
    }
