"""plantwatch models: the seed's recurrent forecasters and detectors, a PCA baseline, training, calibration, safe
artifacts, and the one contract they all meet (models.model_api.ScoringModel).

Usage::

    from models.train import train_model
    from models.train_config import TrainConfig
    from models.artifacts import load_artifact, ArtifactError

    # normal data [T, S] in raw units (NaN = missing), columns in sensor order, sampled every period_s
    path = train_model(data, sensors, "artifacts/r101", TrainConfig(kind="lstm_ae", window=50), period_s=1.0)
    # a fleet: several units' rows one after the other, each kept apart (models.segments.UnitRows)
    path = train_model(both, sensors, "artifacts/fleet", config, units=[UnitRows("R-101", n1), UnitRows("R-102", n2)])

    m = load_artifact(path, device="cpu", expected_sensors=sensors)   # ArtifactError (a ValueError) if refused
    r = m.infer(windows)            # windows [B, W, S] float32 raw units, rows oldest -> newest
    alarms = r.scores > m.threshold # detectors (lstm_ae, bilstm; pca below): r.scores [B], r.sensor_errors [B, S]
    m.calibration["supported"]      # the threshold record: method used, n_effective, holdout FAR, warnings
    m.resolve_level, m.critical_level   # levels for resolving an episode / a critical alert
    m.envelope["sensors"]["s0"]["min_window_std"]   # the training data's envelope (None for old artifacts)

    f = load_artifact("artifacts/r101-lstm")   # forecasters ("rnn", "lstm", "gru", "seq2seq", "attention_lstm")
    r = f.infer(windows)            # r.forecasts [B, H, S] raw units, steps 1..H after each window
    score, per_sensor = f.residual_score(forecast_made_last_step, actual_row)   # [B, S] each -> [B], [B, S]
    alarms = score > f.threshold    # r.attention [B, W] for "attention_lstm"

    m_gpu = m.to("cuda")            # models.device.resolve_device: "auto" | "cpu" | "cuda"

    from models.serving import load_for_serving   # what the service calls: no torch on the CPU
    s = load_for_serving(path, "cpu")   # an OnnxModel (ONNX Runtime) when the artifact has model.onnx, else torch
    s.infer(windows)                    # the same InferenceResult, within the manifest's onnx.tolerance

    train_model(data, sensors, "artifacts/r101-pca", TrainConfig(kind="pca", window=30))   # the baseline kind
    load_for_serving("artifacts/r101-pca")   # a PcaDetector, numpy on any device (no torch, no ONNX Runtime)

Command line: ``plantwatch train --data FILE.csv|DIR --model KIND --out DIR`` (monitor/commands/train.py; the rows it
trains on, one unit or a fleet, in a time range, with exclusions, are chosen by models/train_data.py, and read by
monitor.wire.csvfile, the one torch-free reader the backtest and the simulators share),
``plantwatch export-onnx DIR ...`` (monitor/commands/export_onnx.py: the graph for artifacts written before it).

Modules: networks (nn.Modules), kinds (the kind registry: roles, runtimes, tensor shapes; no torch), preprocessing
(scalers, missing values, interleaved splits, windows), segments (a fleet's units and cuts: the split, the pieces),
train_data and exclusions (what `train` reads and leaves out), train (the run) and its steps: train_config
(TrainConfig), train_rows (filled, split, windowed rows), train_fit (the network's fit), train_threshold (the
threshold and the holdout check); calibration (quantile and peaks-over-threshold, what the data supports), envelope
(the training data's per-sensor envelope), model_api (the contract: ScoringModel, InferenceResult, the manifest's view
of a model, batch padding; no torch), inference (LoadedModel, torch), onnx_export (the serving graph, torch),
onnx_model (OnnxModel, ONNX Runtime, no torch), pca (PcaDetector, numpy), pca_train (the pca kind's training),
pca_artifact (its artifact, no torch), serving (load_for_serving: which runtime), reference (the probe and the stored
reference windows), manifest (the manifest's and weights file's checks, no torch), artifacts (writing, and the torch
loader), artifact_io (reading an artifact's files without trusting them, writing them atomically), hostile (a corpus
of hostile artifacts for tests and benchmarks; the edits that make them: hostile_edits, hostile_onnx_edits), device.

Torch-free: kinds, preprocessing, segments, train_data, exclusions, train_config, train_rows, train_threshold,
pca_train, calibration, envelope, model_api, manifest, reference, onnx_model, pca, pca_artifact, serving, artifact_io
and device import no torch (the CPU serving path; tests/models/test_onnx.py and tests/models/test_contract.py check
it; tests/models/test_fleet.py train_data; tests/models/test_training.py the training steps).
tests/models/test_contract.py checks the contract on every kind and runtime.
"""
