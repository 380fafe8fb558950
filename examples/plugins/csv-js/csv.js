// An exporter in JavaScript that writes a CSV row per record: events, spans and metrics, with
// `type,time,name,trace_id,span_id,detail` (an event's severity, a span's end, a metric's number
// of points). Config: `file`, the CSV file in the sandbox directory (default `records.csv`).
// The same rows as the Python and Rust CSV examples write.

import { defineExporter, files, log } from '../../../sdk/js/wasmtel.js';

const HEADER = 'type,time,name,trace_id,span_id,detail\n';

/** A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
function field(value) {
  const text = value === undefined || value === null ? '' : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The row of a record. */
function row(r) {
  let fields;
  switch (r.type) {
    case 'event':
      fields = [r.type, r.time, r.name, r.trace_id, r.span_id, r.severity_text];
      break;
    case 'span':
      fields = [r.type, r.start, r.name, r.trace_id, r.span_id, r.end];
      break;
    case 'metric':
      fields = [r.type, r.points.at(-1)?.time, r.name, '', '', r.points.length];
      break;
    default:
      return '';
  }
  return fields.map(field).join(',') + '\n';
}

class Csv {
  constructor(config) {
    for (const key of Object.keys(config)) {
      if (key !== 'file') throw new Error(`unknown config key \`${key}\``);
    }
    this.out = files.openAppend(config.file ?? 'records.csv');
    if (this.out.size === 0n) this.out.append(HEADER);
    log.info('writing CSV rows');
  }

  exportBatch(batch) {
    let rows = '';
    for (const record of batch.records()) rows += row(record);
    this.out.append(rows);
  }
}

export const { exporter, textBatches } = defineExporter(Csv);
