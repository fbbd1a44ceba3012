"""Ring buffers: readings in, aligned rows and complete windows out, per unit.

Modules, one job each (import from them; this package re-exports nothing)::

    monitor.buffers.ring_buffers  RingBuffers: every configured unit, the API the buffer stage and the backtest call
    monitor.buffers.unit_spec     UnitSpec: how one unit's readings are aligned and windowed (from its config)
    monitor.buffers.results       AddResult (what one add or flush produced), ClosedRow (the recording's rows)
    monitor.buffers.aligner       UnitAligner: one unit's door: the clock guard, placing values in open rows,
                                  late and duplicate, out-of-range marks
    monitor.buffers.ring          UnitRing: one unit's row grid and ring: rows close in order, hold-over, windows,
                                  gap-skipped rows and their health records

The package imports monitor.messages and monitor.timeline, nothing of the stages: pure and single-threaded, so the
service's buffer thread and the backtest align the same readings into the same rows.
"""
