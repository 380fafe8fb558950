// Tests of wasmtel.js under Node.js (`node --import ./register.mjs --test`), its host imports
// stood in for by host.mjs: batches read from the record format, the exporter's one object,
// errors as the WIT error, the log, and appending to a file of the sandbox directory.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { logged, sandbox, granted } from './host.mjs';
import { Batch, Permanent, Retryable, defineExporter, files, log } from '../wasmtel.js';

const fixture = fs.readFileSync(
  new URL('../../../tests/fixtures/codex-session.jsonl', import.meta.url),
  'utf8',
);
const lines = fixture.split('\n').filter((l) => l !== '');

test('a batch gives its resource and every record, in order, by type', () => {
  const batch = new Batch(lines.slice(0, 41).join('\n') + '\n');
  assert.deepEqual(batch.resource, JSON.parse(lines[0]).attributes);
  const records = [...batch.records()];
  assert.deepEqual(records, lines.slice(1, 41).map((l) => JSON.parse(l)));
  for (const type of ['event', 'span', 'metric']) {
    const of = [...batch[`${type}s`]()];
    assert.deepEqual(of, records.filter((r) => r.type === type));
  }
  assert.ok([...batch.spans()].length > 0 && [...batch.events()].length > 0);
});

test('a batch of the resource alone has no records', () => {
  assert.deepEqual([...new Batch(lines[0] + '\n').records()], []);
});

test('one object lives from init to shutdown, and keeps what it holds', () => {
  const seen = [];
  class Counter {
    constructor(config, context) {
      this.config = config;
      this.context = context;
      this.records = 0;
    }
    exportBatch(batch) {
      this.records += [...batch.records()].length;
      seen.push(this);
    }
    shutdown() {
      seen.push(`shut ${this.records}`);
    }
  }
  const { exporter, textBatches } = defineExporter(Counter);
  exporter.init('{"file": "x.csv"}', { exporterName: 'c', sessionId: 's' });
  const batch = lines.slice(0, 11).join('\n') + '\n';
  textBatches.exportLines(batch);
  textBatches.exportLines(batch);
  exporter.flush(); // a class without flush
  assert.equal(seen[0], seen[1]);
  assert.deepEqual(seen[0].config, { file: 'x.csv' });
  assert.equal(seen[0].context.exporterName, 'c');
  exporter.shutdown();
  assert.equal(seen[2], 'shut 20');
  assert.throws(() => textBatches.exportLines(batch), {
    tag: 'permanent',
    val: 'called before init',
  });
});

test('exceptions become the WIT error', () => {
  const throwing = (e) =>
    defineExporter(
      class {
        exportBatch() {
          throw e;
        }
      },
    );
  const exportIt = (e) => {
    const { exporter, textBatches } = throwing(e);
    exporter.init('{}', {});
    textBatches.exportLines(lines[0] + '\n');
  };
  assert.throws(() => exportIt(new Retryable('busy', 1500)), {
    tag: 'retryable',
    val: { message: 'busy', retryAfterMs: 1500n },
  });
  assert.throws(() => exportIt(new Retryable('busy')), {
    tag: 'retryable',
    val: { message: 'busy', retryAfterMs: undefined },
  });
  assert.throws(() => exportIt(new Permanent('bad row')), { tag: 'permanent', val: 'bad row' });
  assert.throws(() => exportIt(new TypeError('oops')), { tag: 'permanent', val: 'oops' });
  assert.throws(() => exportIt('a string'), { tag: 'permanent', val: 'a string' });
  const { exporter } = defineExporter(
    class {
      constructor() {
        throw new Permanent('unknown config key `x`');
      }
    },
  );
  assert.throws(() => exporter.init('{}', {}), {
    tag: 'permanent',
    val: 'unknown config key `x`',
  });
  assert.throws(() => exporter.exportBatch(new Uint8Array()), { tag: 'permanent' });
});

test('log writes each level into the host log', () => {
  logged.length = 0;
  log.info('hello');
  log.error(42);
  assert.deepEqual(logged, [
    ['info', 'hello'],
    ['error', '42'],
  ]);
});

test('files append to the end, and know their size', () => {
  const first = files.openAppend('out.csv');
  assert.equal(first.size, 0n);
  first.append('a,b\n');
  first.append('ü\n');
  const again = files.openAppend('out.csv');
  assert.equal(again.size, 7n);
  again.append('c\n');
  assert.equal(fs.readFileSync(path.join(sandbox, 'out.csv'), 'utf8'), 'a,b\nü\nc\n');
  granted.dirs = 0;
  try {
    assert.throws(() => files.openAppend('x'), Permanent);
  } finally {
    granted.dirs = 1;
  }
});
