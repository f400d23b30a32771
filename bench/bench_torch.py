#!/usr/bin/env python3
# Copied from ../shared/reference/bench_torch.py (the project's PyTorch timing anchor) so that bench/compare-pytorch runs without ../shared; only the import path differs (tools/ref/deeplab_mnv2.py).
"""CPU timing anchors for the AMS DeepLabV3-MobileNetV2 workload (PyTorch 1.13, Debian).

One configuration per invocation (so every run stays well under 5 minutes and
allocator state does not leak between configurations). Prints one human line and,
with --jsonl FILE, appends one JSON record.

  mode infer : batch B, 3xHxW, model.eval(), torch.no_grad(), output = upsampled logits
  mode train : one AMS server step = zero_grad + forward + softmax cross-entropy over
               num_classes (on logits bilinearly upsampled to the label size, as DeepLab's
               upsample_logits=True) + backward + Adam step; BatchNorm in eval mode
               (frozen moving statistics) but gamma/beta trainable; dropout active.
  variants   : --channels-last, --no-exact-padding (symmetric instead of TF SAME pads
               on the 4 stride-2 convs; identical shapes and FLOPs),
               --jit {none,freeze,ofi,mobile} (inference only: torch.jit.trace +
               freeze (folds BN) / + optimize_for_inference (oneDNN layouts) /
               optimize_for_mobile (XNNPACK))

GFLOP/s uses the analytic conv multiply-adds from deeplab_mnv2.count():
  inference: 2 * MACs * batch / t ;  training: 3 * 2 * MACs * batch / t.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import warnings

warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "ref"))
import deeplab_mnv2  # noqa: E402


def build(args):
    torch.manual_seed(0)
    m = deeplab_mnv2.DeepLabV3MobileNetV2(num_classes=args.num_classes,
                                          output_stride=args.os,
                                          exact_padding=args.exact_padding)
    # non-trivial BN statistics so nothing degenerates to zeros
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return m


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mode', choices=['infer', 'train'], default='infer')
    ap.add_argument('--os', type=int, default=16, choices=[8, 16])
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--height', type=int, default=256)
    ap.add_argument('--width', type=int, default=512)
    ap.add_argument('--num-classes', type=int, default=19)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=None)
    ap.add_argument('--reps', type=int, default=None)
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--no-exact-padding', dest='exact_padding', action='store_false')
    ap.add_argument('--jit', choices=['none', 'freeze', 'ofi', 'mobile'], default='none')
    ap.add_argument('--no-mkldnn', action='store_true', help='torch.backends.mkldnn.enabled=False')
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--profile', default=None, help='write torch profiler table to this file')
    ap.add_argument('--jsonl', default=None)
    ap.add_argument('--tag', default='')
    args = ap.parse_args()

    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    if args.warmup is None:
        args.warmup = 5 if args.mode == 'infer' else 2
    if args.reps is None:
        args.reps = 20 if args.mode == 'infer' else 5

    B, H, W = args.batch, args.height, args.width
    cnt = deeplab_mnv2.count(H, W, args.os, args.num_classes)
    macs = cnt['conv_macs'] * B
    flops = 2 * macs * (3 if args.mode == 'train' else 1)

    m = build(args)
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    m = m.to(memory_format=mf)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, 3, H, W, generator=g).contiguous(memory_format=mf)

    if args.mode == 'infer':
        m.eval()
        fwd = m
        if args.jit != 'none':
            with torch.no_grad():
                tr = torch.jit.trace(m, x)
                if args.jit == 'freeze':
                    fwd = torch.jit.freeze(tr)
                elif args.jit == 'ofi':
                    fwd = torch.jit.optimize_for_inference(torch.jit.freeze(tr))
                elif args.jit == 'mobile':
                    from torch.utils.mobile_optimizer import optimize_for_mobile
                    fwd = optimize_for_mobile(tr)
            with torch.no_grad():
                ref = m(x)
                out = fwd(x)
                err = (ref - out).abs().max().item()
                if err > 1e-2 * max(1.0, ref.abs().max().item()):
                    raise SystemExit('jit variant %s mismatch: max abs err %g' % (args.jit, err))

        def step():
            with torch.no_grad():
                fwd(x)
    else:
        m.train()
        m.freeze_bn()
        labels = torch.randint(0, args.num_classes, (B, H, W), generator=g)
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=args.lr)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = m(x)
            loss = F.cross_entropy(logits, labels, ignore_index=255)
            loss.backward()
            opt.step()

    ts = timed(step, args.warmup, args.reps)
    if args.profile:
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(2 if args.mode == 'train' else 5):
                step()
        with open(args.profile, 'w') as f:
            f.write(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=40))

    ms = [t * 1e3 for t in ts]
    med = statistics.median(ms)
    alloc = 'glibc'
    if 'tcmalloc' in os.environ.get('LD_PRELOAD', ''):
        alloc = 'tcmalloc'
    elif 'jemalloc' in os.environ.get('LD_PRELOAD', ''):
        alloc = 'jemalloc'
    elif 'mmap_max=0' in os.environ.get('GLIBC_TUNABLES', ''):
        alloc = 'glibc-nommap'
    rec = dict(tag=args.tag, mode=args.mode, alloc=alloc, os=args.os, batch=B, H=H, W=W,
               threads=args.threads, default_threads=default_threads,
               channels_last=args.channels_last, exact_padding=args.exact_padding,
               jit=args.jit, mkldnn=torch.backends.mkldnn.enabled,
               warmup=args.warmup, reps=args.reps,
               ms_min=min(ms), ms_median=med, ms_max=max(ms), ms_all=[round(v, 2) for v in ms],
               ms_per_image_median=med / B,
               gmac=macs / 1e9, gflop=flops / 1e9,
               gflops_at_median=flops / (med * 1e6), gflops_at_min=flops / (min(ms) * 1e6),
               torch=torch.__version__, host=platform.node(),
               time=time.strftime('%Y-%m-%dT%H:%M:%S'))
    print('%-12s %-5s OS%-2d B=%-2d %s%s%s jit=%-6s thr=%d | ms min %.1f  med %.1f  max %.1f '
          '(n=%d) | %.1f ms/img | %.1f GFLOP/step -> %.1f GFLOP/s (med), %.1f (best)' % (
              alloc, args.mode, args.os, B, 'CL ' if args.channels_last else 'NCHW ',
              '' if args.exact_padding else 'sympad ', '' if rec['mkldnn'] else 'nomkldnn ',
              args.jit, args.threads, min(ms), med, max(ms), len(ms), med / B, flops / 1e9,
              rec['gflops_at_median'], rec['gflops_at_min']))
    sys.stdout.flush()
    if args.jsonl:
        with open(args.jsonl, 'a') as f:
            f.write(json.dumps(rec) + '\n')


if __name__ == '__main__':
    main()
