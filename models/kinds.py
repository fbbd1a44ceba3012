"""The model kinds and their seed sizes, without torch: what a manifest may name, and what each kind is.

``KINDS[kind]``: the kind's role ("forecaster" | "detector"), the seed's hyperparameters (examples 1-8 of the
seed text), its default horizon, whether it has attention, and whether it is a network. models.networks builds
the ``nn.Module`` of a network kind; this module only describes them, so the torch-free serving path
(models.manifest, models.onnx_model) can validate a manifest without importing torch. Training
(models/train.py), the artifacts' checks (models/manifest.py), the loaders (models/serving.py), ``plantwatch
train --model`` and the README's table of kinds (docs/config_reference.py) all read this one registry.

Network kinds are torch modules, served by torch or by their exported ONNX graph (``RUNTIMES``); ``pca`` is the
T²/Q baseline (models/pca.py), fitted and scored with numpy, its weights the principal components and their
variances in float64.

``tensor_shapes(kind, n_sensors, window, horizon, **hyperparameters)``: the names and shapes of the state dict
models.networks.build_model makes for those values, computed without building it (torch's LSTM / GRU / RNN
parameter layout: ``weight_ih_l{k}[_reverse]`` [gates x D, input], ``weight_hh_l{k}`` [gates x D, D], two biases
[gates x D]; gates 4 for LSTM, 3 for GRU, 1 for RNN); for the pca its ``components`` [K, S] and ``eigenvalues``
[K]. tests/models/test_onnx.py checks it against the real modules for every network kind.
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
    network: bool = True  # a torch nn.Module (models.networks); False: numpy only (pca)
    weights_dtype: str = "F32"  # the safetensors dtype of every tensor in its weights file
    summary: str = ""  # one line for the docs and ``plantwatch train --help``


# The seed's sizes per kind (examples 1-8). lstm's deeper single-step configuration
# (example 5) is SEED_PRESETS["lstm_deep"].
KINDS: dict[str, KindSpec] = {
    "rnn": KindSpec(
        "forecaster", {"hidden_size": 32, "num_layers": 1, "dropout": 0.0}, 1, summary="Elman RNN, one step ahead"
    ),
    "lstm": KindSpec(
        "forecaster", {"hidden_size": 64, "num_layers": 2, "dropout": 0.0}, 1, summary="stacked LSTM, one step ahead"
    ),
    "gru": KindSpec(
        "forecaster", {"hidden_size": 64, "num_layers": 2, "dropout": 0.0}, 1, summary="stacked GRU, one step ahead"
    ),
    "seq2seq": KindSpec(
        "forecaster",
        {"hidden_size": 128, "num_layers": 2, "dropout": 0.0},
        10,
        summary="LSTM encoder-decoder, H steps ahead",
    ),
    "attention_lstm": KindSpec(
        "forecaster",
        {"hidden_size": 128, "num_layers": 2, "dropout": 0.0},
        1,
        True,
        summary="LSTM with attention over the window, one step ahead",
    ),
    "bilstm": KindSpec(
        "detector",
        {"hidden_size": 64, "num_layers": 2, "dropout": 0.0},
        0,
        summary="bidirectional LSTM reconstruction (sees each row it reconstructs: tends to copy faults)",
    ),
    "lstm_ae": KindSpec(
        "detector",
        {"hidden_size": 64, "num_layers": 1, "latent_size": 8, "dropout": 0.0},
        0,
        summary="LSTM autoencoder with a bottleneck, the default detector",
    ),
    # n_components is chosen by the fit (the components that keep 95 % of the variance) and recorded in the
    # manifest; it cannot be set beforehand, so its "seed" value is None.
    "pca": KindSpec(
        "detector",
        {"n_components": None},
        0,
        network=False,
        weights_dtype="F64",
        summary="PCA T²/Q baseline, fitted and scored with numpy (no network, no ONNX graph, no torch)",
    ),
}
SEED_PRESETS: dict[str, dict[str, Any]] = {
    "lstm_deep": {"kind": "lstm", "hidden_size": 128, "num_layers": 3, "dropout": 0.2},
}
DEFAULT_DETECTOR = "lstm_ae"

# The kinds models.networks builds as torch modules (trained by gradient descent, exported to ONNX).
NETWORK_KINDS: tuple[str, ...] = tuple(kind for kind, spec in KINDS.items() if spec.network)
# The runtimes that score each kind (models/serving.py picks one per artifact and device): a network in torch
# (models.inference.LoadedModel) or in ONNX Runtime (models.onnx_model.OnnxModel), the pca in numpy
# (models.pca.PcaDetector). tests/models/test_contract.py runs its checks on every pair.
RUNTIMES: dict[str, tuple[str, ...]] = {
    kind: ("torch", "onnx") if spec.network else ("numpy",) for kind, spec in KINDS.items()
}

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
    if kind == "pca":  # the principal components [K, S] and their variances [K], K <= S
        k = params["n_components"]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_sensors:
            raise ValueError(f"n_components must be an integer in [1, {n_sensors}] (the sensors), got {k!r}")
        return {"components": (k, n_sensors), "eigenvalues": (k,)}
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
