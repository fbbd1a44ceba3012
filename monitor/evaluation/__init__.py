"""Detection quality: alert events (or per-row flags) against ground-truth fault labels.

Modules, one job each (import from them; this package re-exports nothing)::

    monitor.evaluation.episodes  Episode, episodes_from_events (AlertEvents -> one per alert_id), merge_episodes
                                 (the "any" view: overlapping alerts of a unit as one), ANY
    monitor.evaluation.points    PointMetrics, pointwise: per-row confusion counts, precision, recall, SKAB's FAR
    monitor.evaluation.results   LabelResult (how one fault fared), Evaluation (every figure, and its summary)
    monitor.evaluation.judge     evaluate, evaluate_by_detector, restrict_labels: episodes judged against labels
                                 (the module docstring holds the definitions: detected, false, settling, normal)

Labels are read by monitor.wire.labels. The package is pure numpy, no torch, and reads no file: the backtest, the
report and the quality benchmarks hand it events, labels and row times.
"""
