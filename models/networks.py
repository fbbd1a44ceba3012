"""The seed's recurrent models as ``nn.Module``s, for any number of sensors.

All modules take and return *scaled* values, batch first. Notation: B batch, W window
(input rows), S sensors, H forecast horizon, D hidden size, L latent size.

Forecasters (``role = "forecaster"``): ``forward(x [B, W, S]) -> [B, H, S]``.
Detectors (``role = "detector"``): ``forward(x [B, W, S]) -> reconstruction [B, W, S]``.

``build_model(kind, n_sensors, window, horizon, **hyperparameters)`` makes any of them from the
values stored in an artifact's manifest. The kind registry (``KINDS``, ``KindSpec``, ``SEED_PRESETS``) is
models.kinds, re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# The kind registry lives in models.kinds (no torch there: the serving path validates manifests with it).
from models.kinds import DEFAULT_DETECTOR, KINDS, NETWORK_KINDS, SEED_PRESETS, KindSpec

__all__ = [
    "DEFAULT_DETECTOR",
    "KINDS",
    "NETWORK_KINDS",
    "SEED_PRESETS",
    "AttentionLSTM",
    "BiLSTMReconstructor",
    "KindSpec",
    "LSTMAutoencoder",
    "RecurrentForecaster",
    "Seq2SeqLSTM",
    "build_model",
]


class RecurrentForecaster(nn.Module):
    """One-step (or H-step direct) forecaster: a stacked ``nn.RNN``/``nn.LSTM``/``nn.GRU`` + linear head.

    The seed's examples 1-3 and 5: the last time step's output predicts the next row.

    Inputs: x [B, W, S]. Outputs: [B, H, S] (H = ``horizon``, 1 for the seed's single-step models).
    """

    role = "forecaster"
    has_attention = False

    def __init__(
        self,
        cell: str,
        n_sensors: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        horizon: int = 1,
    ) -> None:
        super().__init__()
        rnn_classes: dict[str, Callable[..., nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in rnn_classes:
            raise ValueError(f"unknown recurrent cell {cell!r}")
        self.n_sensors = n_sensors
        self.horizon = horizon
        # nn.RNN/LSTM/GRU run the time loop in C++ (one call per window batch, not a Python step loop).
        self.rnn = rnn_classes[cell](
            n_sensors,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, horizon * n_sensors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # [B, W, D]
        last = out[:, -1, :]  # [B, D]
        pred: torch.Tensor = self.head(last)  # [B, H * S]
        return pred.view(x.shape[0], self.horizon, self.n_sensors)  # [B, H, S]


class Seq2SeqLSTM(nn.Module):
    """Encoder-decoder LSTM with autoregressive decoding for ``horizon`` steps (seed example 6).

    The encoder reads the window; the decoder starts from the window's last row and feeds each
    prediction back as its next input. In training, ``teacher_forcing`` (a probability) feeds
    the true previous row instead, for the whole batch at once.

    Inputs: x [B, W, S]; target [B, H, S] (training only). Outputs: [B, H, S].
    """

    role = "forecaster"
    has_attention = False

    def __init__(
        self, n_sensors: int, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.0, horizon: int = 10
    ) -> None:
        super().__init__()
        self.horizon = horizon
        drop = dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(n_sensors, hidden_size, num_layers, batch_first=True, dropout=drop)
        self.decoder = nn.LSTM(n_sensors, hidden_size, num_layers, batch_first=True, dropout=drop)
        self.head = nn.Linear(hidden_size, n_sensors)

    def forward(
        self, x: torch.Tensor, target: torch.Tensor | None = None, teacher_forcing: float = 0.0
    ) -> torch.Tensor:
        _, state = self.encoder(x)  # h, c: [num_layers, B, D]
        step_input = x[:, -1:, :]  # [B, 1, S]
        outputs: list[torch.Tensor] = []
        # The decoding loop is over the horizon (10 steps), not over windows: every step runs the whole batch.
        for step in range(self.horizon):
            out, state = self.decoder(step_input, state)  # [B, 1, D]
            pred = self.head(out)  # [B, 1, S]
            outputs.append(pred)
            use_truth = target is not None and teacher_forcing > 0.0 and float(torch.rand(())) < teacher_forcing
            step_input = target[:, step : step + 1, :] if use_truth and target is not None else pred
        return torch.cat(outputs, dim=1)  # [B, H, S]


class AttentionLSTM(nn.Module):
    """LSTM with additive attention over its outputs (seed example 8); returns the weights for inspection.

    Inputs: x [B, W, S]. Outputs: ``forward`` -> [B, 1, S];
    ``forward_with_attention`` -> ([B, 1, S], attention weights [B, W] summing to 1 over W).
    """

    role = "forecaster"
    has_attention = True

    def __init__(self, n_sensors: int, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.horizon = 1
        self.lstm = nn.LSTM(
            n_sensors, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.attention = nn.Linear(hidden_size, 1)
        self.head = nn.Linear(hidden_size, n_sensors)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.lstm(x)  # [B, W, D]
        weights = torch.softmax(self.attention(out), dim=1)  # [B, W, 1]
        context = torch.sum(weights * out, dim=1)  # [B, D]
        return self.head(context).unsqueeze(1), weights.squeeze(2)  # [B, 1, S], [B, W]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]


class BiLSTMReconstructor(nn.Module):
    """The seed's bidirectional LSTM reconstruction model (example 7).

    Each output step sees its own input step (and its neighbours), so the model can learn to
    copy its input and then reconstructs faults nearly as well as normal data. Kept because it
    is in the seed; ``LSTMAutoencoder`` is the default detector.

    Inputs: x [B, W, S]. Outputs: reconstruction [B, W, S].
    """

    role = "detector"
    has_attention = False

    def __init__(self, n_sensors: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.bilstm = nn.LSTM(
            n_sensors,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * hidden_size, n_sensors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.bilstm(x)  # [B, W, 2D]
        recon: torch.Tensor = self.head(out)  # [B, W, S]
        return recon


class LSTMAutoencoder(nn.Module):
    """Bottleneck LSTM encoder-decoder (Malhotra et al. 2016, "LSTM-based Encoder-Decoder for
    Multi-sensor Anomaly Detection"): it cannot copy its input.

    The encoder LSTM reads the window; its last hidden state is squeezed to a small latent
    vector z. The decoder LSTM sees only z (as its initial state and as its input at every
    step), never the window, and reconstructs the window in reverse time order (its first
    step rebuilds the newest row), which is then flipped back. Whatever the window holds that
    z cannot describe (a fault unlike the normal training data) is left as reconstruction error.

    Inputs: x [B, W, S]. Outputs: reconstruction [B, W, S].
    """

    role = "detector"
    has_attention = False

    def __init__(
        self,
        n_sensors: int,
        window: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        latent_size: int = 8,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.window = window
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        drop = dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(n_sensors, hidden_size, num_layers, batch_first=True, dropout=drop)
        self.to_latent = nn.Linear(hidden_size, latent_size)
        self.latent_to_state = nn.Linear(latent_size, 2 * num_layers * hidden_size)
        self.decoder = nn.LSTM(latent_size, hidden_size, num_layers, batch_first=True, dropout=drop)
        self.head = nn.Linear(hidden_size, n_sensors)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, W, S] -> latent z [B, L]."""
        _, (h, _) = self.encoder(x)  # h: [num_layers, B, D]
        z: torch.Tensor = self.to_latent(h[-1])  # [B, L]
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[0], x.shape[1]
        z = self.encode(x)  # [B, L]
        state = torch.tanh(self.latent_to_state(z))  # [B, 2 * num_layers * D]
        state = state.view(batch, 2, self.num_layers, self.hidden_size).permute(1, 2, 0, 3)  # [2, layers, B, D]
        h0, c0 = state[0].contiguous(), state[1].contiguous()
        dec_in = z.unsqueeze(1).expand(batch, steps, z.shape[1])  # [B, W, L]
        out, _ = self.decoder(dec_in, (h0, c0))  # [B, W, D], newest row first
        return torch.flip(self.head(out), dims=[1])  # [B, W, S], oldest row first


def build_model(kind: str, n_sensors: int, window: int, horizon: int, **hyperparameters: Any) -> nn.Module:
    """Make an untrained module of ``kind`` from its hyperparameters (unknown keys are an error)."""
    if kind not in NETWORK_KINDS:
        raise ValueError(f"unknown network kind {kind!r}: expected one of {', '.join(NETWORK_KINDS)}")
    if n_sensors < 1:
        raise ValueError("a model needs at least one sensor")
    params = {**KINDS[kind].seed_hyperparameters, **hyperparameters}
    if kind in ("rnn", "lstm", "gru"):
        return RecurrentForecaster(kind, n_sensors, horizon=max(horizon, 1), **params)
    if kind == "seq2seq":
        return Seq2SeqLSTM(n_sensors, horizon=max(horizon, 1), **params)
    if kind == "attention_lstm":
        return AttentionLSTM(n_sensors, **params)
    if kind == "bilstm":
        return BiLSTMReconstructor(n_sensors, **params)
    return LSTMAutoencoder(n_sensors, window, **params)
