#!/usr/bin/python3
"""compare.py - checks `ams infer` / `ams grad` outputs against an oracle fixture.

    compare.py --fixture DIR [--logits Y.npy] [--grads G.safetensors --grad-log OUT.txt]

DIR is what tools/ref/make_deeplab_fixture.py wrote. Tolerances (issue 3):
  logits     max |Y - expected| <= 1e-4 * max |expected|
  loss       |loss - expected| / |expected| <= 1e-5   (the `loss <value>` line of OUT.txt)
  gradients  every tensor: ||G - expected||_2 / ||expected||_2 <= 1e-3; G must hold
             every trainable name of meta.json (each with its TF shape) and no
             other name (moving statistics are not trainable)
Prints the measured errors (gradients: the worst 5) and exits 1 on any failure.
Needs only numpy, so committed fixtures are checked where torch is absent.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

TOL_LOGITS = 1e-4
TOL_LOSS = 1e-5
TOL_GRAD = 1e-3


def read_safetensors(path):
    """name -> float64 numpy array (F32, F16, BF16, F64)."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError('%s: shorter than a safetensors header' % path)
    n = struct.unpack('<Q', data[:8])[0]
    if n > len(data) - 8:
        raise ValueError('%s: header length %d beyond the file' % (path, n))
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, d in header.items():
        if name == '__metadata__':
            continue
        b, e = d['data_offsets']
        raw = data[base + b:base + e]
        shape = tuple(d['shape'])
        if d['dtype'] == 'F32':
            a = np.frombuffer(raw, '<f4')
        elif d['dtype'] == 'F16':
            a = np.frombuffer(raw, '<f2')
        elif d['dtype'] == 'F64':
            a = np.frombuffer(raw, '<f8')
        elif d['dtype'] == 'BF16':
            a = (np.frombuffer(raw, '<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError('%s: %s: dtype %s not handled' % (path, name, d['dtype']))
        out[name] = a.astype(np.float64).reshape(shape)
    return out


def read_loss(path):
    loss = None
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 2 and p[0] == 'loss':
                loss = float(p[1])
    if loss is None:
        raise ValueError('%s: no "loss <value>" line' % path)
    return loss


def rel_l2(a, b):
    nb = np.linalg.norm(b)
    d = np.linalg.norm(a - b)
    return d / nb if nb > 0 else d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--fixture', required=True)
    ap.add_argument('--logits')
    ap.add_argument('--grads')
    ap.add_argument('--grad-log', help='stdout of `ams grad` (has the loss line)')
    a = ap.parse_args()
    fx = a.fixture
    with open(os.path.join(fx, 'meta.json')) as f:
        meta = json.load(f)
    fails = []
    print('fixture %s: os %d, %dx%dx%d, %d classes, subset %s, %s weights, seed %d'
          % (fx, meta['os'], meta['batch'], meta['height'], meta['width'], meta['classes'],
             meta['subset'], meta['dtype'], meta['seed']))

    if a.logits:
        got = np.load(a.logits).astype(np.float64)
        exp = np.load(os.path.join(fx, 'logits.npy')).astype(np.float64)
        if got.shape != exp.shape:
            fails.append('logits shape %s, expected %s' % (got.shape, exp.shape))
        else:
            scale = np.abs(exp).max()
            if not np.all(np.isfinite(got)):
                err = np.inf
            else:
                err = np.abs(got - exp).max()
            ok = err <= TOL_LOGITS * scale
            print('  logits: max abs err %.3e, max|logit| %.4g, ratio %.3e (tol %.0e)  %s'
                  % (err, scale, err / scale, TOL_LOGITS, 'ok' if ok else 'FAIL'))
            if not ok:
                fails.append('logits')

    if a.grad_log:
        loss = read_loss(a.grad_log)
        with open(os.path.join(fx, 'loss.txt')) as f:
            exp_loss = float(f.read().split()[0])
        rel = abs(loss - exp_loss) / abs(exp_loss)
        ok = rel <= TOL_LOSS
        print('  loss: %.9g vs %.9g, rel err %.3e (tol %.0e)  %s'
              % (loss, exp_loss, rel, TOL_LOSS, 'ok' if ok else 'FAIL'))
        if not ok:
            fails.append('loss')

    if a.grads:
        got = read_safetensors(a.grads)
        exp = read_safetensors(os.path.join(fx, 'grads.safetensors'))
        trainable = meta['trainable']
        missing = [n for n in trainable if n not in got]
        extra = sorted(set(got) - set(trainable))
        if missing:
            fails.append('%d trainable tensors missing from %s, e.g. %s'
                         % (len(missing), a.grads, missing[0]))
        if extra:
            fails.append('%d names in %s that are not trainable, e.g. %s'
                         % (len(extra), a.grads, extra[0]))
        errs = []
        for n, e in exp.items():
            if n not in got:
                continue
            g = got[n]
            if g.shape != e.shape:
                fails.append('gradient %s shape %s, expected %s' % (n, g.shape, e.shape))
                continue
            r = rel_l2(g, e) if np.all(np.isfinite(g)) else np.inf
            errs.append((r, n, np.linalg.norm(e)))
        errs.sort(reverse=True)
        nbad = sum(1 for r, _, _ in errs if not r <= TOL_GRAD)
        print('  gradients: %d of %d trainable tensors compared (%s in the fixture), '
              'names: %d missing, %d extra; %d over tol %.0e'
              % (len(errs), len(trainable), meta.get('grads', 'all'), len(missing),
                 len(extra), nbad, TOL_GRAD))
        if errs:
            print('    median rel L2 %.3e; worst 5:' % np.median([r for r, _, _ in errs]))
            for r, n, norm in errs[:5]:
                print('    %-62s rel L2 %.3e  |expected| %.3e  %s'
                      % (n, r, norm, 'ok' if r <= TOL_GRAD else 'FAIL'))
        if nbad:
            fails.append('%d gradient tensors' % nbad)

    if fails:
        print('compare: FAIL (%s): %s' % (fx, '; '.join(fails)))
        return 1
    print('compare: ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
