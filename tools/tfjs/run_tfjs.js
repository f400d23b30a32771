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

const { readNpy, writeNpy } = require('./npy');

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
