// run_tfjs.js - runs a TF.js graph model (model.json + .bin shards from disk) with
// the pure-JS TF.js runtime (CPU backend) on an .npy input and writes an .npy output:
// the independent oracle for ams's TF.js importer (tests/parity_tfjs.sh).
//
//   node tools/tfjs/run_tfjs.js --tfjs DIR/node_modules --model M.json --input X.npy
//        --output Y.npy [--output-name NAME] [--feed NAME=VALUE ...] [--reps N]
// X is float32 [N,H,W,C] fed to the graph's image input; --feed gives scalar inputs
// (RVM: r1i=0 ... downsample_ratio=0.5); NAME is a node name (Identity_1) or a
// signature key (pha); default: the first signature output. Prints "ms_per_run X".
'use strict';
const fs = require('fs');
const path = require('path');

function die(msg) { process.stderr.write('run_tfjs: ' + msg + '\n'); process.exit(1); }

// ---- a tiny .npy reader/writer (float32 little endian, C order) ----
function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') die(file + ': not an .npy file');
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = b.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) die(file + ': bad .npy header');
  if (descr[1] !== '<f4') die(file + ': only float32 (<f4) is supported, got ' + descr[1]);
  if (fortran[1] !== 'False') die(file + ': Fortran order is not supported');
  const dims = shape[1].split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const n = dims.reduce((a, d) => a * d, 1);
  const off = hstart + hlen;
  if (b.length < off + 4 * n) die(file + ': truncated');
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

async function main() {
  const a = process.argv.slice(2);
  const opt = { feeds: [], reps: 1 };
  for (let i = 0; i < a.length; i++) {
    const need = () => { if (i + 1 >= a.length) die(a[i] + ' needs a value'); return a[++i]; };
    switch (a[i]) {
      case '--tfjs': opt.tfjs = need(); break;
      case '--model': opt.model = need(); break;
      case '--input': opt.input = need(); break;
      case '--output': opt.output = need(); break;
      case '--output-name': opt.outputName = need(); break;
      case '--feed': opt.feeds.push(need()); break;
      case '--reps': opt.reps = Number(need()); break;
      default: die('unknown option ' + a[i]);
    }
  }
  if (!opt.tfjs || !opt.model || !opt.input || !opt.output) die('need --tfjs, --model, --input, --output');
  const tf = require(path.resolve(opt.tfjs, '@tensorflow/tfjs'));
  await tf.setBackend('cpu');
  await tf.ready();

  const mj = JSON.parse(fs.readFileSync(opt.model, 'utf8'));
  const dir = path.dirname(opt.model);
  const specs = [], bufs = [];
  for (const g of mj.weightsManifest) {
    for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...g.weights);
  }
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
  const handler = tf.io.fromMemory({
    modelTopology: mj.modelTopology, weightSpecs: specs, weightData,
    format: mj.format, generatedBy: mj.generatedBy, convertedBy: mj.convertedBy,
    signature: mj.signature, userDefinedMetadata: mj.userDefinedMetadata,
  });
  const model = await tf.loadGraphModel(handler);

  const x = readNpy(opt.input);
  // The image input: the Placeholder that is not fed by --feed.
  const fedNames = opt.feeds.map(f => f.split('=')[0]);
  const inputs = model.inputs.map(t => t.name.replace(/:0$/, ''));
  const image = inputs.find(n => !fedNames.includes(n));
  if (!image) die('no input left for the image');
  const sig = mj.signature && mj.signature.outputs ? mj.signature.outputs : {};
  let out = opt.outputName;
  if (out && sig[out]) out = sig[out].name;
  if (!out) out = model.outputs[0].name;
  out = out.replace(/:0$/, '');

  let best = Infinity, y = null;
  for (let r = 0; r < Math.max(1, opt.reps); r++) {
    const feeds = {};
    feeds[image] = tf.tensor(x.data, x.shape, 'float32');
    for (const f of opt.feeds) {
      const [k, v] = f.split('=');
      feeds[k] = tf.scalar(Number(v), 'float32');
    }
    const t0 = process.hrtime.bigint();
    const res = await model.executeAsync(feeds, out);
    const data = await res.data();
    const t1 = process.hrtime.bigint();
    best = Math.min(best, Number(t1 - t0) / 1e6);
    y = { shape: res.shape, data };
    for (const k in feeds) feeds[k].dispose();
    res.dispose();
  }
  writeNpy(opt.output, y.shape, y.data);
  process.stdout.write('output ' + out + ' shape [' + y.shape.join(',') + ']\n');
  process.stdout.write('ms_per_run ' + best.toFixed(2) + '\n');
}

main().catch(e => die(String(e && e.stack || e)));
