// npy.js - a tiny .npy reader/writer for the TF.js parity tools (float32 '<f4',
// little endian, C order; format versions 1 and 2 read, version 1 written).
'use strict';
const fs = require('fs');

function fail(msg) { throw new Error(msg); }

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.length < 12 || b.toString('latin1', 0, 6) !== '\x93NUMPY') fail(file + ': not an .npy file');
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > b.length) fail(file + ': truncated header');
  const header = b.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) fail(file + ': bad .npy header');
  if (descr[1] !== '<f4') fail(file + ': only float32 (<f4) is supported, got ' + descr[1]);
  if (fortran[1] !== 'False') fail(file + ': Fortran order is not supported');
  const dims = shape[1].split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const n = dims.reduce((a, d) => a * d, 1);
  const off = hstart + hlen;
  if (b.length < off + 4 * n) fail(file + ': truncated data');
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(off + 4 * i);
  return { shape: dims, data };
}

function writeNpy(file, shape, data) {
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
      shape.join(', ') + (shape.length === 1 ? ',' : '') + '), }';
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1; h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(file + '.tmp', Buffer.concat([h, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(file + '.tmp', file);
}

module.exports = { readNpy, writeNpy };
