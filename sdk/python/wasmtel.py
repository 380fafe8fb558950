"""wasmtel's helper library for exporter plugins in Python (componentize-py), world
`wasmtel:exporter/text-plugin` of the repository's `wit/`: every batch arrives as lines of the
record format, each parsed by `json` (in C) as the plugin iterates.

    import wasmtel
    from wasmtel import Exporter, TextBatches  # the exports componentize-py looks for

    @wasmtel.exporter
    class Mine:
        def __init__(self, config, context): ...      # `init`: the config, parsed
        def export_batch(self, batch):                 # a `wasmtel.Batch`
            for record in batch.records(): ...
        def flush(self): ...                           # optional
        def shutdown(self): ...                        # optional

One object of the class lives from `init` to `shutdown`, so what it keeps stays between calls.
Raise `wasmtel.Retryable` or `wasmtel.Permanent` to fail a call; any other exception is permanent,
with its message. What a plugin keeps across calls is lost if its instance faults, unless flushed.
The standard `logging` goes to the host's log.
"""

import json
import logging

from wit_world import exports
from wit_world.exports import exporter as wit
from wit_world.imports import log as host_log
from componentize_py_types import Err


class Retryable(Exception):
    """A failure worth retrying: the host retries the batch, after `retry_after_ms` if given."""

    def __init__(self, message, retry_after_ms=None):
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Permanent(Exception):
    """A failure that will not go away: the host drops the batch and counts it."""


class Batch:
    """One batch: its resource's attributes, and its records in the order they were recorded."""

    def __init__(self, lines):
        resource, _, self._records = lines.partition("\n")
        self.resource = json.loads(resource)["attributes"]

    def records(self):
        """Every record (`type` is `event`, `span` or `metric`), parsed as it is reached."""
        loads = json.loads
        for line in self._records.splitlines():
            yield loads(line)

    def _of_type(self, kind):
        return (r for r in self.records() if r["type"] == kind)

    def events(self):
        return self._of_type("event")

    def spans(self):
        return self._of_type("span")

    def metrics(self):
        return self._of_type("metric")


_LEVELS = [
    (logging.ERROR, host_log.Level.ERROR),
    (logging.WARNING, host_log.Level.WARN),
    (logging.INFO, host_log.Level.INFO),
    (logging.DEBUG, host_log.Level.DEBUG),
]


class HostLog(logging.Handler):
    """A `logging` handler that writes into the host's log, tagged with the exporter's name."""

    def emit(self, record):
        level = next((to for at, to in _LEVELS if record.levelno >= at), host_log.Level.TRACE)
        host_log.log(level, self.format(record))


# The host tags each message with its level and the exporter's name: the message alone.
logging.basicConfig(level=logging.INFO, handlers=[HostLog()], format="%(message)s")

_class = None
_live = None


def exporter(cls):
    """Makes `cls` the plugin's exporter: `cls(config, context)` at `init`."""
    global _class
    _class = cls
    return cls


def _error(e):
    if isinstance(e, Retryable):
        return wit.Error_Retryable(wit.Retryable(str(e), e.retry_after_ms))
    return wit.Error_Permanent(str(e) or type(e).__name__)


def _call(body):
    try:
        return body()
    except Err:
        raise
    except Exception as e:
        raise Err(_error(e))


def _it():
    if _live is None:
        raise Permanent("called before init")
    return _live


class Exporter(exports.Exporter):
    """The `exporter` export: the class given to `wasmtel.exporter`, one object for all calls."""

    def init(self, config, context):
        def make():
            global _live
            if _class is None:
                raise Permanent("no class is marked @wasmtel.exporter")
            _live = _class(json.loads(config), context)

        _call(make)

    def export_batch(self, batch):
        raise Err(wit.Error_Permanent("this plugin takes batches as text (text-batches)"))

    def flush(self):
        _call(lambda: getattr(_it(), "flush", lambda: None)())

    def shutdown(self):
        def end():
            global _live
            getattr(_it(), "shutdown", lambda: None)()
            _live = None

        _call(end)


class TextBatches(exports.TextBatches):
    """The `text-batches` export: each batch as a `Batch`."""

    def export_lines(self, lines):
        _call(lambda: _it().export_batch(Batch(lines)))
