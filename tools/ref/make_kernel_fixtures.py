#!/usr/bin/python3
"""make_kernel_fixtures.py - PyTorch oracle fixtures for the reference conv, pool and
bilinear-resize kernels (tests/test_ref_conv.c, test_ref_pool.c, test_ref_resize.c).

Run with Debian's interpreter (it has torch + numpy):
    /usr/bin/python3 tools/ref/make_kernel_fixtures.py [--out tests/data/kernels]

Each case writes two .npy files:
  <case>_desc.npy  int32 vector, the kernel descriptor (layout per kind below)
  <case>.npy       float32 vector, the case's tensors concatenated, each flattened in
                   NHWC / HWIO order, in the order listed below.
Kinds:
  conv  (conv2d)           desc n h w c oh ow oc kh kw sh sw dh dw pt pb pl pr groups
        tensors x(n,h,w,c) w(kh,kw,c/g,oc) b(oc) y(n,oh,ow,oc) dy dx dw db
  convt (conv2d_transpose) desc as conv (the forward conv whose data gradient it is)
        tensors x(n,oh,ow,oc) w(kh,kw,c/g,oc) b(c) y(n,h,w,c) dy dx dw db
  avgpool / maxpool        desc n h w c oh ow kh kw sh sw pt pb pl pr
        tensors x(n,h,w,c) y(n,oh,ow,c) dy dx
  resize                   desc n h w c oh ow mode (0 asymmetric, 1 align_corners, 2 half_pixel)
        tensors x(n,h,w,c) y(n,oh,ow,c) dy dx
y is the forward output; dy a random output gradient; dx, dw, db the gradients PyTorch's
autograd gives for dy. The ops are built from independent PyTorch primitives:
explicit F.pad + F.conv2d; F.conv_transpose2d (no padding) + pad/crop for the
transpose; sum-pool / count-pool for TF's padding-excluding average; -inf padding +
F.max_pool2d; F.interpolate (align_corners=True / False = TF align_corners /
half_pixel_centers) and F.grid_sample for TF's legacy asymmetric rule.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F


def nchw(a):
    return a.permute(0, 3, 1, 2)


def nhwc(a):
    return a.permute(0, 2, 3, 1)


def out_size(i, k, s, d, pb, pa):
    span = i + pb + pa - d * (k - 1) - 1
    return 0 if span < 0 else span // s + 1


def tf_same(i, k, s, d=1):
    eff = (k - 1) * d + 1
    o = -(-i // s)
    tot = max((o - 1) * s + eff - i, 0)
    return tot // 2, tot - tot // 2


def flat(*ts):
    return np.concatenate([t.detach().contiguous().numpy().astype(np.float32).ravel() for t in ts])


class Writer:
    def __init__(self, out):
        self.out = out
        os.makedirs(out, exist_ok=True)

    def write(self, name, desc, blob):
        np.save(os.path.join(self.out, name + '_desc.npy'), np.asarray(desc, dtype='<i4'))
        np.save(os.path.join(self.out, name + '.npy'), np.asarray(blob, dtype='<f4'))
        print('%-16s desc %s, %d floats' % (name, list(desc), blob.size))


def conv_case(wr, g, name, n, h, w, c, oc, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, groups):
    oh, ow = out_size(h, kh, sh, dh, pt, pb), out_size(w, kw, sw, dw, pl, pr)
    x = torch.randn(n, h, w, c, generator=g).requires_grad_()
    wt = torch.randn(kh, kw, c // groups, oc, generator=g).requires_grad_()
    b = torch.randn(oc, generator=g).requires_grad_()
    xp = F.pad(nchw(x), (pl, pr, pt, pb))
    y = nhwc(F.conv2d(xp, wt.permute(3, 2, 0, 1), b, (sh, sw), 0, (dh, dw), groups))
    assert y.shape == (n, oh, ow, oc), y.shape
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    desc = [n, h, w, c, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, groups]
    wr.write(name, desc, flat(x, wt, b, y, dy, x.grad, wt.grad, b.grad))


def convt_case(wr, g, name, n, h, w, c, oc, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, groups):
    oh, ow = out_size(h, kh, sh, dh, pt, pb), out_size(w, kw, sw, dw, pl, pr)
    x = torch.randn(n, oh, ow, oc, generator=g).requires_grad_()
    wt = torch.randn(kh, kw, c // groups, oc, generator=g).requires_grad_()
    b = torch.randn(c, generator=g).requires_grad_()
    # torch's transposed weight (in=oc, out/groups=c/g, kh, kw) is the same tensor as the
    # forward conv's OIHW weight
    full = F.conv_transpose2d(nchw(x), wt.permute(3, 2, 0, 1), None, (sh, sw), 0, 0, groups,
                              (dh, dw))
    hp, wp = h + pt + pb, w + pl + pr
    full = F.pad(full, (0, wp - full.shape[3], 0, hp - full.shape[2]))
    y = nhwc(full[:, :, pt:pt + h, pl:pl + w]) + b
    assert y.shape == (n, h, w, c), y.shape
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    desc = [n, h, w, c, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, groups]
    wr.write(name, desc, flat(x, wt, b, y, dy, x.grad, wt.grad, b.grad))


def pool_case(wr, g, name, kind, n, h, w, c, kh, kw, sh, sw, pt, pb, pl, pr):
    oh, ow = out_size(h, kh, sh, 1, pt, pb), out_size(w, kw, sw, 1, pl, pr)
    x = torch.randn(n, h, w, c, generator=g).requires_grad_()
    pad = (pl, pr, pt, pb)
    if kind == 'avgpool':
        xs = F.avg_pool2d(F.pad(nchw(x), pad), (kh, kw), (sh, sw), divisor_override=1)
        ones = torch.ones(1, 1, h, w)
        cnt = F.avg_pool2d(F.pad(ones, pad), (kh, kw), (sh, sw), divisor_override=1)
        y = nhwc(xs / cnt)
    else:
        y = nhwc(F.max_pool2d(F.pad(nchw(x), pad, value=-float('inf')), (kh, kw), (sh, sw)))
    assert y.shape == (n, oh, ow, c), y.shape
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    wr.write(name, [n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pb, pl, pr], flat(x, y, dy, x.grad))


def resize_case(wr, g, name, mode, n, h, w, c, oh, ow):
    x = torch.randn(n, h, w, c, generator=g).requires_grad_()
    if mode == 0:
        # TF legacy: src = i * in/out. grid_sample (align_corners=False) maps a grid value
        # u to pixel ((u + 1) * size - 1) / 2, so u = (2 * src + 1) / size - 1.
        sy = torch.arange(oh, dtype=torch.float32) * (h / oh)
        sx = torch.arange(ow, dtype=torch.float32) * (w / ow)
        gy = (2 * sy + 1) / h - 1
        gx = (2 * sx + 1) / w - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing='xy'), dim=-1)  # (oh, ow, 2)
        grid = grid.unsqueeze(0).expand(n, oh, ow, 2)
        y = nhwc(F.grid_sample(nchw(x), grid, mode='bilinear', padding_mode='border',
                               align_corners=False))
    else:
        y = nhwc(F.interpolate(nchw(x), size=(oh, ow), mode='bilinear',
                               align_corners=(mode == 1)))
    assert y.shape == (n, oh, ow, c), y.shape
    dy = torch.randn(y.shape, generator=g)
    y.backward(dy)
    wr.write(name, [n, h, w, c, oh, ow, mode], flat(x, y, dy, x.grad))


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument('--out', default=os.path.join(here, '..', '..', 'tests', 'data', 'kernels'))
    a = ap.parse_args()
    g = torch.Generator().manual_seed(20261125)
    wr = Writer(os.path.normpath(a.out))

    # grouped conv: asymmetric padding, stride (2,1), dilation (1,2), 2 groups, odd sizes
    conv_case(wr, g, 'conv_grouped', 2, 6, 5, 4, 6, 3, 2, 2, 1, 1, 2, 1, 2, 0, 1, 2)
    # depthwise, channel multiplier 2, stride 2, TF SAME on an even size (pads 0,1)
    pt, pb = tf_same(6, 3, 2)
    conv_case(wr, g, 'conv_depthwise', 1, 6, 6, 3, 6, 3, 3, 2, 2, 1, 1, pt, pb, pt, pb, 3)
    # transposed grouped conv, stride 2, dilation (1,2); h=8 leaves the last input row
    # outside every window (it gets only the bias)
    convt_case(wr, g, 'convt_grouped', 2, 8, 6, 4, 2, 3, 3, 2, 2, 1, 2, 1, 1, 0, 1, 2)
    # pooling with asymmetric padding (windows clipped at both ends), and TF SAME 3x3/2
    pool_case(wr, g, 'avgpool', 'avgpool', 2, 5, 6, 3, 3, 2, 2, 2, 1, 1, 0, 1)
    pt, pb = tf_same(7, 3, 2)
    pool_case(wr, g, 'avgpool_same', 'avgpool', 1, 7, 7, 2, 3, 3, 2, 2, pt, pb, pt, pb)
    pool_case(wr, g, 'maxpool', 'maxpool', 2, 5, 6, 3, 3, 2, 2, 2, 1, 1, 0, 1)
    pool_case(wr, g, 'maxpool_same', 'maxpool', 1, 7, 7, 2, 3, 3, 2, 2, pt, pb, pt, pb)
    # bilinear resize: every mode, up and down, non-integer ratios
    for mode, tag in ((0, 'asym'), (1, 'align'), (2, 'half')):
        resize_case(wr, g, 'resize_%s_up' % tag, mode, 2 if mode == 2 else 1, 3, 4, 3, 7, 9)
        resize_case(wr, g, 'resize_%s_down' % tag, mode, 1, 7, 9, 2, 3, 5)
    resize_case(wr, g, 'resize_align_one', 1, 1, 4, 5, 2, 1, 3)


if __name__ == '__main__':
    main()
