"""An exporter in Python that writes a CSV row per record: events, spans and metrics, with
`type,time,name,trace_id,span_id,detail` (an event's severity, a span's end, a metric's number of
points). Config: `file`, the CSV file in the sandbox directory (default `records.csv`). The same
rows as the JavaScript and Rust CSV examples write."""

import logging

import wasmtel
from wasmtel import Exporter, TextBatches  # noqa: F401 (the exports componentize-py looks for)

HEADER = "type,time,name,trace_id,span_id,detail\n"


def field(value):
    """A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180)."""
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def row(r):
    kind = r["type"]
    if kind == "event":
        fields = [kind, r["time"], r.get("name"), r.get("trace_id"), r.get("span_id"),
                  r.get("severity_text")]
    elif kind == "span":
        fields = [kind, r["start"], r["name"], r["trace_id"], r["span_id"], r["end"]]
    elif kind == "metric":
        points = r["points"]
        fields = [kind, points[-1]["time"] if points else None, r["name"], "", "", len(points)]
    else:
        return ""
    return ",".join(field(f) for f in fields) + "\n"


@wasmtel.exporter
class Csv:
    def __init__(self, config, context):
        unknown = set(config) - {"file"}
        if unknown:
            raise wasmtel.Permanent(f"unknown config key `{sorted(unknown)[0]}`")
        self.out = open(config.get("file", "records.csv"), "a", encoding="utf-8", newline="")
        if self.out.tell() == 0:
            self.out.write(HEADER)
        logging.info("writing CSV rows")

    def export_batch(self, batch):
        self.out.write("".join(row(r) for r in batch.records()))
        self.out.flush()

    def flush(self):
        self.out.flush()

    def shutdown(self):
        self.out.close()
