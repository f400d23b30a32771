#!/usr/bin/python3
"""make_xception_fixture.py - PyTorch oracle fixtures for DeepLabV3+-Xception65 parity.

The Xception65 counterpart of make_deeplab_fixture.py (same files, same
tolerances, read by tools/ref/compare.py), on the independent model in
tools/ref/deeplab_xception65.py:

  DIR/weights.safetensors  every tensor, TF names and layouts, F32
  DIR/input.npy, labels.npy, logits.npy, loss.txt, grads.safetensors, meta.json

Random weights of realistic scale: He-normal convolutions, gamma ~ U(0.5, 1.5),
beta ~ N(0, 0.1); the BN moving statistics are calibrated on the input plus a
few random images (a trained network's BN outputs have the scale gamma/beta
give them); then every value that reaches a ReLU is moved at least KINK_MARGIN
off the kink by shifting a BN beta: for a BN output that is ReLU'd, its own
beta; for a unit's output that the next xception module ReLUs (a residual
sum), the beta of the unit's last pointwise BN, which shifts that sum per
channel. A flipped ReLU mask would otherwise move gradients by far more than
float32 noise.

Float32 noise is the hard part of this model: ~25 layers without a residual
path (exit flow, ASPP, decoder) each add and amplify rounding error, so on
random weights torch's own float32 logits land 3e-5..1.2e-4 of max|logit| from
the float64 truth (measured), up to the whole 1e-4 tolerance. Two choices of
the random network reduce that without touching what is compared:
  - depthwise BNs get one moving variance per layer (the layer's mean; x
    U(0.5, 1.5) per channel) instead of per channel: per-channel calibration
    rescales a depthwise channel that came out weak (9 random taps cancelling)
    to full scale, and its rounding noise with it;
  - the head's depthwise kernels (ASPP, decoder) have mean +1 std: a zero-mean
    3x3 kernel on the decoder's smooth, upsampled input cancels like a
    derivative.
Expected values come from a float64 run; a seed whose float32 forward uses
more than MARGIN of the logits or loss tolerance is replaced by the next one
(forward only: the gradients' float32 noise, 2e-5..2e-4 relative L2
measured, is far inside their 1e-3 tolerance). The model has 41 M values:
generate fixtures at test time, never commit them.

Run with Debian's interpreter (it has python3-torch): /usr/bin/python3.
"""
import argparse
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deeplab_xception65 as ref  # noqa: E402
from make_deeplab_fixture import (KINK_MARGIN, TOL_LOGITS, TOL_LOSS, best_shift,  # noqa: E402
                                  is_trainable, loss_fn, make_data, to_tf, write_safetensors)

GAMMA_RANGE = (0.5, 1.5)
VAR_FACTOR = (0.5, 1.5)
VAR_FLOOR = 0.1
CALIB_EXTRA = 3
HEAD_DW_MEAN = 1.0
MARGIN = 0.5         # the float32 oracle must stay below half the logits and loss tolerances
DW_UNIFORM_VAR = True


def preprocess(x_nhwc, dtype):
    x = torch.from_numpy(x_nhwc).to(dtype).permute(0, 3, 1, 2).contiguous()
    return x / 127.5 - 1.0


def calibrate_bn(model, x, seed):
    """moving_mean/variance = the batch statistics of each BN input over x, off by
    a random amount (mean + N(0, 0.1) std, variance x U(0.5, 1.5)); variances are
    floored at VAR_FLOOR x the layer mean so dead channels are not amplified."""
    g = torch.Generator().manual_seed(seed + 2)
    hooks = []
    uniform = set()
    for mod in model.modules():
        if isinstance(mod, ref.ConvBN) and mod.depthwise and DW_UNIFORM_VAR:
            uniform.add(mod.BatchNorm)

    def pre(bn, inp):
        v = inp[0]
        c = v.shape[1]
        mean = v.mean(dim=(0, 2, 3)).double()
        if v.shape[0] * v.shape[2] * v.shape[3] >= 16:
            var = v.var(dim=(0, 2, 3), unbiased=False).double()
        else:
            var = (v.double() - mean[None, :, None, None]).pow(2).mean().expand(c)
        if bn in uniform:
            var = var.mean().expand(c)
        var = var.clamp_min(VAR_FLOOR * var.mean().item() + 1e-6)
        bn.running_mean.copy_(mean + 0.1 * var.sqrt() * torch.randn(c, generator=g,
                                                                     dtype=mean.dtype))
        bn.running_var.copy_(var * (VAR_FACTOR[0] + (VAR_FACTOR[1] - VAR_FACTOR[0])
                                    * torch.rand(c, generator=g, dtype=mean.dtype)))

    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            hooks.append(mod.register_forward_pre_hook(pre))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()


def clear_kinks(model, x):
    """Shift BN betas (forward order) so no ReLU input of this batch lies within
    KINK_MARGIN of 0. Returns the smallest margin reached."""
    worst = [np.inf]
    hooks = []

    def shifted(out, bn):
        beta = bn.bias.detach().numpy().copy()
        o = out.detach().numpy()
        shift = np.zeros_like(beta)
        for c in range(o.shape[1]):
            v = o[:, c].ravel()
            d = np.abs(v).min()
            if d < KINK_MARGIN:
                shift[c], d = best_shift(v, (0.0,), beta[c], 'f32')
            worst[0] = min(worst[0], d)
        bn.bias.data += torch.from_numpy(shift).to(bn.bias.dtype)
        return out + torch.from_numpy(shift).to(out.dtype)[None, :, None, None]

    for kind, mod in model.relu_sources():
        if kind == 'bn':
            hooks.append(mod.BatchNorm.register_forward_hook(
                lambda bn, i, o: shifted(o, bn)))
        else:
            hooks.append(mod.register_forward_hook(
                lambda u, i, o: shifted(o, u.sep[2].pointwise.BatchNorm)))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return worst[0]


def build_model(os_, classes, seed, x_nhwc):
    g = torch.Generator().manual_seed(seed)
    m = ref.DeepLabV3PlusXception65(num_classes=classes, output_stride=os_).double()
    with torch.no_grad():
        for name, (t, kind) in m.tf_variable_map().items():
            if kind in ('conv', 'dw'):
                fan_in = t.shape[1] * t.shape[2] * t.shape[3]
                v = torch.randn(t.shape, generator=g, dtype=torch.float64)
                if kind == 'dw' and not name.startswith('xception_65/'):
                    v = v + HEAD_DW_MEAN
                v = v * math.sqrt(2.0 / fan_in)
            elif name.endswith('/gamma'):
                lo, hi = GAMMA_RANGE
                v = lo + (hi - lo) * torch.rand(t.shape, generator=g, dtype=torch.float64)
            elif name.endswith('/moving_variance'):
                v = 0.5 + torch.rand(t.shape, generator=g, dtype=torch.float64)
            else:
                v = 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
            t.copy_(v.float().double())     # representable in the F32 file
    m.eval()
    m.freeze_bn()
    rs = np.random.RandomState(seed + 3)
    calib = rs.randint(0, 256, size=(CALIB_EXTRA,) + x_nhwc.shape[1:]).astype(np.float32)
    calib = np.concatenate([x_nhwc, calib])
    m.float()
    calibrate_bn(m, preprocess(calib, torch.float32), seed)
    with torch.no_grad():   # statistics rounded to what the file holds
        for name, (t, kind) in m.tf_variable_map().items():
            t.copy_(t.float())
    m.double()
    margin = clear_kinks(m, preprocess(x_nhwc, torch.float64))
    with torch.no_grad():
        for name, (t, kind) in m.tf_variable_map().items():
            t.copy_(t.float().double())
    return m, margin


def run(model, x_nhwc, labels, dtype):
    model = model.to(dtype)
    model.zero_grad(set_to_none=True)
    logits = model(preprocess(x_nhwc, dtype))
    loss = loss_fn(logits, torch.from_numpy(labels.astype(np.int64)), None)
    loss.backward()
    grads = OrderedDict((n, to_tf(t.grad, k)) for n, (t, k) in model.tf_variable_map().items()
                        if is_trainable(n))
    return logits.detach().permute(0, 2, 3, 1).numpy(), float(loss.item()), grads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--os', type=int, choices=(8, 16), default=16)
    ap.add_argument('--classes', type=int, default=3)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--height', type=int, default=65)
    ap.add_argument('--width', type=int, default=65)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--tries', type=int, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)

    # A seed whose float32 forward lands more than MARGIN of the logits or loss
    # tolerance from the float64 truth cannot judge a float32 engine: next seed.
    # The choice depends on the oracle alone, never on the engine under test.
    seed = a.seed
    for _ in range(a.tries):
        x, y = make_data(a.batch, a.height, a.width, a.classes, seed)
        model, margin = build_model(a.os, a.classes, seed, x)
        lab = torch.from_numpy(y.astype(np.int64))
        with torch.no_grad():
            l64 = model.double()(preprocess(x, torch.float64))
            l32 = model.float()(preprocess(x, torch.float32)).double()
            e64, e32 = loss_fn(l64, lab, None).item(), loss_fn(l32, lab, None).item()
        sc = dict(logits=float((l64 - l32).abs().max() / l64.abs().max()),
                  loss=abs(e32 - e64) / abs(e64), kink_margin=margin)
        bad = [k for k, tol in (('logits', TOL_LOGITS), ('loss', TOL_LOSS))
               if not sc[k] <= MARGIN * tol]
        if margin < 0.5 * KINK_MARGIN:
            bad.append('the kink margin')
        if not bad:
            break
        print('  seed %d: float32 oracle off by logits %.2e of max|logit|, loss rel %.2e: '
              'over %g of the tolerance on %s; trying seed %d'
              % (seed, sc['logits'], sc['loss'], MARGIN, ', '.join(bad), seed + 1))
        seed += 1
    else:
        print('make_xception_fixture: %d seeds from %d: the float32 oracle is too far from '
              'float64' % (a.tries, a.seed), file=sys.stderr)
        return 1
    r64 = run(model, x, y, torch.float64)

    vmap = model.tf_variable_map()
    write_safetensors(os.path.join(a.out, 'weights.safetensors'),
                      OrderedDict((n, to_tf(t, k).astype(np.float32)) for n, (t, k) in vmap.items()),
                      {'generator': 'tools/ref/make_xception_fixture.py', 'seed': str(seed)})
    logits, loss, grads = r64
    np.save(os.path.join(a.out, 'input.npy'), x)
    np.save(os.path.join(a.out, 'labels.npy'), y)
    np.save(os.path.join(a.out, 'logits.npy'), logits.astype(np.float32))
    with open(os.path.join(a.out, 'loss.txt'), 'w') as f:
        f.write('%.9g\n' % loss)
    write_safetensors(os.path.join(a.out, 'grads.safetensors'),
                      OrderedDict((n, g.astype(np.float32)) for n, g in grads.items()))
    meta = OrderedDict(
        arch='deeplabv3plus-xception65', os=a.os, classes=a.classes, batch=a.batch,
        height=a.height, width=a.width, subset=None, seed=seed, seed_asked=a.seed,
        dtype='f32', grads='all', expected='f64',
        trainable=[n for n in vmap if is_trainable(n)],
        non_trainable=[n for n in vmap if not is_trainable(n)],
        max_abs_logit=float(np.abs(logits).max()), loss=loss, self_check=sc,
        torch_version=torch.__version__)
    with open(os.path.join(a.out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')
    print('fixture %s: xception65 os %d, %dx%dx%d, %d classes, seed %d'
          % (a.out, a.os, a.batch, a.height, a.width, a.classes, seed))
    print('  loss %.7g, max|logit| %.4g, smallest ReLU input distance from 0: %.2e'
          % (loss, meta['max_abs_logit'], margin))
    print('  oracle f32 vs f64: logits %.2e of max|logit|, loss rel %.2e'
          % (sc['logits'], sc['loss']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
