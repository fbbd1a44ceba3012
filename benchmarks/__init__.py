"""The benchmarks that produce the README's and QUALITY.md's figures, one script per question.

Run one from the repository root as a module (``.venv/bin/python -m benchmarks.pipeline --help``): the root is
then on the import path, so ``monitor``, ``models``, ``simulators``, ``benchmarks`` and the test kit (``tests.kit``:
the broker, the spawned service, the /metrics reader, the tiny-training recipe the tests use too) import as they
are, and no script edits ``sys.path``. _harness.py holds what only the service benchmarks share (the publisher
process, configs, process-tree memory and CPU); _rawmqtt.py the publisher's MQTT client.
"""
