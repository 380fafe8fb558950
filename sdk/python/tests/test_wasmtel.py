"""Tests of wasmtel.py under CPython (`python3 -m unittest discover sdk/python/tests`), the
modules componentize-py makes (`wit_world`, `componentize_py_types`) stood in for by small
modules with the same names: batches read from the record format, the exporter's one object,
errors as the WIT error, and `logging` into the host's log."""

import json
import logging
import pathlib
import sys
import types
import unittest
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[3]
FIXTURE = (ROOT / "tests/fixtures/codex-session.jsonl").read_text().splitlines()
LOGGED = []


def _stand_ins():
    """`wit_world` and `componentize_py_types` as componentize-py generates their shapes."""

    class Err(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    @dataclass
    class Retryable:
        message: str
        retry_after_ms: object

    @dataclass
    class ErrorRetryable:
        value: Retryable

    @dataclass
    class ErrorPermanent:
        value: str

    class Level:
        TRACE, DEBUG, INFO, WARN, ERROR = range(5)

    exporter = types.ModuleType("wit_world.exports.exporter")
    exporter.Retryable = Retryable
    exporter.Error_Retryable = ErrorRetryable
    exporter.Error_Permanent = ErrorPermanent
    exports = types.ModuleType("wit_world.exports")
    exports.exporter = exporter
    exports.Exporter = type("Exporter", (), {})
    exports.TextBatches = type("TextBatches", (), {})
    log = types.ModuleType("wit_world.imports.log")
    log.Level = Level
    log.log = lambda level, message: LOGGED.append((level, message))
    imports = types.ModuleType("wit_world.imports")
    imports.log = log
    world = types.ModuleType("wit_world")
    world.exports, world.imports = exports, imports
    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = Err
    for name, module in [
        ("wit_world", world),
        ("wit_world.exports", exports),
        ("wit_world.exports.exporter", exporter),
        ("wit_world.imports", imports),
        ("wit_world.imports.log", log),
        ("componentize_py_types", cpt),
    ]:
        sys.modules[name] = module
    return Err, Level


Err, Level = _stand_ins()
sys.path.insert(0, str(ROOT / "sdk/python"))
import wasmtel  # noqa: E402


def lines(n):
    return "\n".join(FIXTURE[: n + 1]) + "\n"


class BatchTest(unittest.TestCase):
    def test_resource_and_every_record_in_order_by_type(self):
        batch = wasmtel.Batch(lines(40))
        self.assertEqual(batch.resource, json.loads(FIXTURE[0])["attributes"])
        records = list(batch.records())
        self.assertEqual(records, [json.loads(line) for line in FIXTURE[1:41]])
        for kind, of in [("event", batch.events), ("span", batch.spans), ("metric", batch.metrics)]:
            self.assertEqual(list(of()), [r for r in records if r["type"] == kind])
        self.assertTrue(list(batch.spans()) and list(batch.events()))

    def test_the_resource_alone_has_no_records(self):
        self.assertEqual(list(wasmtel.Batch(lines(0)).records()), [])


class ExporterTest(unittest.TestCase):
    def setUp(self):
        wasmtel._class = None
        wasmtel._live = None

    def test_one_object_from_init_to_shutdown_keeps_what_it_holds(self):
        seen = []

        @wasmtel.exporter
        class Counter:
            def __init__(self, config, context):
                self.config, self.context, self.records = config, context, 0

            def export_batch(self, batch):
                self.records += len(list(batch.records()))
                seen.append(self)

            def shutdown(self):
                seen.append(f"shut {self.records}")

        # componentize-py makes an object per export: state is the helper's, not theirs.
        wasmtel.Exporter().init('{"file": "x.csv"}', "context")
        wasmtel.TextBatches().export_lines(lines(10))
        wasmtel.TextBatches().export_lines(lines(10))
        wasmtel.Exporter().flush()  # a class without flush
        self.assertIs(seen[0], seen[1])
        self.assertEqual(seen[0].config, {"file": "x.csv"})
        self.assertEqual(seen[0].context, "context")
        wasmtel.Exporter().shutdown()
        self.assertEqual(seen[2], "shut 20")
        with self.assertRaises(Err) as raised:
            wasmtel.TextBatches().export_lines(lines(1))
        self.assertEqual(raised.exception.value.value, "called before init")

    def failing(self, exception):
        @wasmtel.exporter
        class Failing:
            def __init__(self, config, context):
                pass

            def export_batch(self, batch):
                raise exception

        wasmtel.Exporter().init("{}", None)
        with self.assertRaises(Err) as raised:
            wasmtel.TextBatches().export_lines(lines(0))
        return raised.exception.value

    def test_exceptions_become_the_wit_error(self):
        error = self.failing(wasmtel.Retryable("busy", 1500))
        self.assertEqual((error.value.message, error.value.retry_after_ms), ("busy", 1500))
        error = self.failing(wasmtel.Retryable("busy"))
        self.assertEqual((error.value.message, error.value.retry_after_ms), ("busy", None))
        self.assertEqual(self.failing(wasmtel.Permanent("bad row")).value, "bad row")
        self.assertEqual(self.failing(KeyError("name")).value, "'name'")
        self.assertEqual(self.failing(ValueError()).value, "ValueError")
        self.assertIsInstance(self.failing(OSError("disk")), sys.modules[
            "wit_world.exports.exporter"].Error_Permanent)

    def test_no_class_and_a_refusing_init_are_permanent(self):
        with self.assertRaises(Err) as raised:
            wasmtel.Exporter().init("{}", None)
        self.assertIn("@wasmtel.exporter", raised.exception.value.value)

        @wasmtel.exporter
        class Refusing:
            def __init__(self, config, context):
                raise wasmtel.Permanent(f"unknown config key `{sorted(config)[0]}`")

        with self.assertRaises(Err) as raised:
            wasmtel.Exporter().init('{"x": 1}', None)
        self.assertEqual(raised.exception.value.value, "unknown config key `x`")
        with self.assertRaises(Err):
            wasmtel.Exporter().export_batch(b"")


class LoggingTest(unittest.TestCase):
    def test_logging_goes_to_the_host_log_with_its_level_and_the_message_alone(self):
        LOGGED.clear()
        logging.info("hello %s", "there")
        logging.warning("careful")
        logging.error("broken")
        logging.debug("not at the default level")
        self.assertEqual(
            LOGGED,
            [(Level.INFO, "hello there"), (Level.WARN, "careful"), (Level.ERROR, "broken")],
        )


if __name__ == "__main__":
    unittest.main()
