"""The newcomer's demo: broker, simulated reactors, small trained models, the real service and a live view.

API::

    opts = DemoOptions(workdir=Path("demo-run"), duration_s=None)     # see the fields for every knob
    result = run_demo(opts, stop=threading.Event(), out=sys.stdout)   # blocks until stop is set or duration ends
    result.run_dir, result.events, result.report, result.rows_published, result.train_seconds
    print(summary(result))

Steps, in order (one module each):

1. MQTT broker (broker.py): an embedded amqtt broker (pure Python, MQTT 3.1.1 only) in a thread of this process on
   127.0.0.1, unless ``broker`` names one. The service therefore runs in its 3.1.1 mode here.
2. The plant (plant.py): two steady reactors, config/scenarios/demo.yaml's units, with a bias on reactor-01's
   temperature sensor ``fault_at_s`` into the run.
3. Training (training.py): an ``lstm_ae`` detector and an ``lstm`` forecaster on the normal plant, small sizes,
   with tqdm progress bars, reused on the next run when the settings are unchanged.
4. The service's config (config_file.py), validated by monitor.config like any other; the service is the ``App``
   that ``plantwatch run`` uses, its scorer in its own process. The run's directory gets a copy someone can run by
   hand with `plantwatch run --config` (a broker on localhost:1883; its header says what the demo ran instead).
5. The run (run.py): the simulator streams the plant at ``speed`` times real time (and records it to
   ``data.csv``); the service's outputs come back off the broker (monitor.output_feed) into two sinks, the live
   view (view.py: per unit the state, score against threshold and top sensor, the alerts as they fire and resolve,
   and the metrics URL) and the result files (monitor.result_files: ``scores.csv``, ``alerts.jsonl``).
6. Stop (``stop`` set, e.g. by Ctrl-C, or ``duration_s`` of wall time passed): simulator, service (its clean
   stop: drain, ``offline``), view, broker; then ``labels.csv`` and ``report.png`` (report.py, monitor.report).

The models stay in ``<workdir>/artifacts``; every run's records go to a new ``<workdir>/run-<UTC stamp>``
(run.py), so a second demo keeps the first one's.
"""

from monitor.demo.broker import EmbeddedBroker, port_or_free
from monitor.demo.options import DemoError, DemoOptions, DemoResult
from monitor.demo.report import summary
from monitor.demo.run import run_demo

__all__ = ["DemoError", "DemoOptions", "DemoResult", "EmbeddedBroker", "port_or_free", "run_demo", "summary"]
