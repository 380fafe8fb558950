// Stand-ins for the host's imports of wasmtel.js: `log` keeps each message, and
// `getDirectories` gives one directory, a temporary directory of the real file system, through
// the calls of `wasi:filesystem` that wasmtel.js makes (`openAt`, `stat`, `write`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const logged = [];

export function log(level, message) {
  logged.push([level, message]);
}

export const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'wasmtel-js-'));
export const granted = { dirs: 1 };

class Descriptor {
  constructor(fd) {
    this.fd = fd;
  }

  stat() {
    return { size: BigInt(fs.fstatSync(this.fd).size) };
  }

  write(bytes, offset) {
    return BigInt(fs.writeSync(this.fd, bytes, 0, bytes.length, Number(offset)));
  }
}

const root = {
  openAt(_pathFlags, name, openFlags, _descriptorFlags) {
    const full = path.join(sandbox, name);
    const fd = fs.openSync(full, openFlags.create ? 'a+' : 'r+');
    return new Descriptor(fd);
  },
};

export function getDirectories() {
  return granted.dirs ? [[root, '.']] : [];
}

process.on('exit', () => fs.rmSync(sandbox, { recursive: true, force: true }));
