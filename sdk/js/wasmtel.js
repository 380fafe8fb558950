// wasmtel's helper library for exporter plugins in JavaScript (ComponentizeJS), world
// `wasmtel:exporter/text-plugin` of the repository's `wit/`: every batch arrives as lines of the
// record format and is parsed by the engine's own JSON parser, one record at a time as the plugin
// iterates.
//
//   import { defineExporter, Permanent, files } from './wasmtel.js';
//   class Mine {
//     constructor(config, context) { ... }           // `init`: the exporter's config, parsed
//     exportBatch(batch) { for (const r of batch.records()) ... }
//     flush() {}                                      // optional
//     shutdown() {}                                   // optional
//   }
//   export const { exporter, textBatches } = defineExporter(Mine);
//
// One object of the class lives from `init` to `shutdown`, so what it keeps stays between calls.
// Throw `Retryable` or `Permanent` to fail a call; any other exception is permanent, with its
// message. What a plugin keeps across calls is lost if its instance faults, unless flushed.

import { log as hostLog } from 'wasmtel:exporter/log@0.2.2';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

/** A failure worth retrying: the host retries the batch, after `retryAfterMs` if given. */
export class Retryable extends Error {
  constructor(message, retryAfterMs) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

/** A failure that will not go away: the host drops the batch and counts it. */
export class Permanent extends Error {}

/** The host's log, tagged with the exporter's name. */
export const log = Object.fromEntries(
  ['trace', 'debug', 'info', 'warn', 'error'].map((level) => [
    level,
    (message) => hostLog(level, String(message)),
  ]),
);

/** One batch: its resource, and its records in the order they were recorded. */
export class Batch {
  constructor(lines) {
    this.lines = lines;
    const end = lines.indexOf('\n');
    this.resource = JSON.parse(lines.slice(0, end)).attributes;
    this.start = end + 1;
  }

  /** Every record (`type` is `event`, `span` or `metric`), parsed as it is reached. */
  *records() {
    const lines = this.lines;
    for (let at = this.start; at < lines.length; ) {
      const end = lines.indexOf('\n', at);
      yield JSON.parse(lines.slice(at, end));
      at = end + 1;
    }
  }

  /** The records of one type. */
  *ofType(type) {
    for (const record of this.records()) {
      if (record.type === type) yield record;
    }
  }

  events() {
    return this.ofType('event');
  }

  spans() {
    return this.ofType('span');
  }

  metrics() {
    return this.ofType('metric');
  }
}

/** The WIT error of an exception. */
function toError(e) {
  if (e instanceof Retryable) {
    const after = e.retryAfterMs === undefined ? undefined : BigInt(e.retryAfterMs);
    return { tag: 'retryable', val: { message: e.message, retryAfterMs: after } };
  }
  return { tag: 'permanent', val: e instanceof Error ? e.message : String(e) };
}

/** Runs `body`; an exception becomes the WIT error the host expects. */
function call(body) {
  try {
    body();
  } catch (e) {
    throw toError(e);
  }
}

/**
 * The exports of a plugin whose exporter is the class `Exporter`: `new Exporter(config,
 * context)` at `init` (`config` parsed from JSON; `context` has `exporterName` and `sessionId`),
 * then `exportBatch(batch)` with a `Batch` per batch, `flush()` and `shutdown()` if it has them.
 */
export function defineExporter(Exporter) {
  let it = null;
  const live = () => {
    if (it === null) throw new Permanent('called before init');
    return it;
  };
  return {
    exporter: {
      init(config, context) {
        call(() => {
          it = new Exporter(JSON.parse(config), context);
        });
      },
      exportBatch() {
        throw toError(new Permanent('this plugin takes batches as text (text-batches)'));
      },
      flush() {
        call(() => live().flush?.());
      },
      shutdown() {
        call(() => {
          live().shutdown?.();
          it = null;
        });
      },
    },
    textBatches: {
      exportLines(lines) {
        call(() => live().exportBatch(new Batch(lines)));
      },
    },
  };
}

const encoder = new TextEncoder();

/** The sandbox directory the host granted; an error if it grants none. */
function sandbox() {
  const dirs = getDirectories();
  if (dirs.length === 0) throw new Permanent('the sandbox grants no directory (sandbox.dir)');
  return dirs[0][0];
}

/** Files of the sandbox directory. */
export const files = {
  /**
   * `path` (relative to the sandbox directory), created if missing, opened to append text:
   * `{ size, append(text) }`.
   */
  openAppend(path) {
    const file = sandbox().openAt({}, path, { create: true }, { write: true, read: true });
    let size = file.stat().size;
    return {
      get size() {
        return size;
      },
      append(text) {
        let bytes = encoder.encode(text);
        while (bytes.length > 0) {
          const written = file.write(bytes, size);
          size += written;
          bytes = bytes.subarray(Number(written));
        }
      },
    };
  },
};
