"""Alerts: from scores to alert events, per unit and detector, and the payloads that carry them.

Modules, one job each (import from them; this package re-exports nothing)::

    monitor.alerts.policy         AlertPolicy, EnvelopePolicy: when an alert fires, resolves and repeats
    monitor.alerts.tracker        AlertTracker: the state machine of one (unit, detector) and its retained state;
                                  make_alert_id, top_contributors (the module docstring tells the rules)
    monitor.alerts.board          AlertBoard: every tracker of every unit, the retained .../state payload
    monitor.alerts.event_payload  event_to_json / event_from_json (and _dict): the plantwatch/alerts/{unit} payload
    monitor.alerts.json_fields    the strict JSON field readers both payloads share

The package imports monitor.messages, monitor.thresholds and monitor.wire.payloads, nothing of the stages: pure
and single-threaded, so the service and the backtest give the same events from the same scores.
"""
