// npy_tool.js - .npy helpers for tests/parity_tfjs.sh, so the test needs no Python:
//   node npy_tool.js rgb2npy RAW.rgb W H OUT.npy     raw RGB24 -> float32 [1,H,W,3] RGB/255
//   node npy_tool.js synth W H OUT.npy               a synthetic frame (sky, ground, a figure)
//   node npy_tool.js diff A.npy B.npy TOL [MINMAX]   prints max/mean abs error; exit 1 if > TOL,
//                                                    the shapes differ, or B's largest value is
//                                                    below MINMAX (a vacuous all-zero output)
'use strict';
const fs = require('fs');
const { readNpy, writeNpy } = require('./npy');

function die(msg) { process.stderr.write('npy_tool: ' + msg + '\n'); process.exit(1); }

const [cmd, ...a] = process.argv.slice(2);
try {
  if (cmd === 'rgb2npy' && a.length === 4) {
    const raw = fs.readFileSync(a[0]);
    const w = Number(a[1]), h = Number(a[2]);
    if (!(w > 0 && h > 0) || raw.length !== w * h * 3) die('raw size ' + raw.length + ' is not ' + w + 'x' + h + 'x3');
    const d = new Float32Array(w * h * 3);
    for (let i = 0; i < d.length; i++) d[i] = raw[i] / 255;
    writeNpy(a[3], [1, h, w, 3], d);
  } else if (cmd === 'synth' && a.length === 3) {
    const w = Number(a[0]), h = Number(a[1]);
    const d = new Float32Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = 3 * (y * w + x);
        let r = 0.4 + 0.3 * y / h, g = 0.6 - 0.2 * y / h, b = 0.8 - 0.5 * y / h;
        // a figure: head and body ellipses in the middle
        const dx = (x - w / 2) / w, hy = (y - 0.3 * h) / h, by = (y - 0.65 * h) / h;
        if (dx * dx / 0.004 + hy * hy / 0.006 < 1) { r = 0.85; g = 0.65; b = 0.55; }
        if (dx * dx / 0.02 + by * by / 0.06 < 1) { r = 0.2; g = 0.25; b = 0.5; }
        d[i] = r; d[i + 1] = g; d[i + 2] = b;
      }
    }
    writeNpy(a[2], [1, h, w, 3], d);
  } else if (cmd === 'diff' && (a.length === 3 || a.length === 4)) {
    const x = readNpy(a[0]), y = readNpy(a[1]), tol = Number(a[2]);
    if (x.shape.join(',') !== y.shape.join(',')) die('shapes differ: [' + x.shape + '] vs [' + y.shape + ']');
    let max = 0, sum = 0, bmax = -Infinity, above = 0;
    for (let i = 0; i < x.data.length; i++) {
      if (y.data[i] > bmax) bmax = y.data[i];
      if (y.data[i] > 0.5) above++;
      const e = Math.abs(x.data[i] - y.data[i]);
      if (!(e <= max)) max = Number.isNaN(e) ? Infinity : e;
      sum += e;
    }
    const mean = x.data.length ? sum / x.data.length : 0;
    process.stdout.write('max_abs_err ' + max.toExponential(3) + ' mean_abs_err ' + mean.toExponential(3) +
                         ' shape [' + x.shape + '] tol ' + tol + ' ref_max ' + bmax.toFixed(4) +
                         ' ref_above_half ' + above + '\n');
    const minmax = a.length === 4 ? Number(a[3]) : -Infinity;
    if (!(bmax >= minmax)) process.stdout.write('reference output is vacuous: max ' + bmax + ' < ' + minmax + '\n');
    process.exit(max <= tol && bmax >= minmax ? 0 : 1);
  } else {
    die('usage: rgb2npy RAW W H OUT | synth W H OUT | diff A B TOL [MINMAX]');
  }
} catch (e) {
  die(String(e.message || e));
}
