#!/usr/bin/python3
"""make_batchnorm_fixture.py - PyTorch oracle for the reference frozen batch norm
(src/nn/ref/batchnorm.c): torch.nn.BatchNorm2d in eval mode (moving statistics), its
output and the autograd gradients of input, weight (gamma) and bias (beta).

    /usr/bin/python3 tools/ref/make_batchnorm_fixture.py [--out tests/data/batchnorm]

Writes, read by tests/test_ref_batchnorm.c:
  bn_desc.npy  int32 [rows, c]            (rows = n*h*w of an NHWC tensor)
  bn.npy       float32, concatenated: eps (1), x (rows,c), gamma (c), beta (c), mean (c),
               var (c), y (rows,c), dy (rows,c), dx (rows,c), dgamma (c), dbeta (c)
c = 67 crosses the kernel's 64-channel block.
"""
import argparse
import os

import numpy as np
import torch


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "tests/data/batchnorm"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(4242)
    n, h, w, c, eps = 1, 2, 3, 67, 1e-3
    bn = torch.nn.BatchNorm2d(c, eps=eps).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=gen) * 4 - 2)
        bn.bias.copy_(torch.rand(c, generator=gen) * 2 - 1)
        bn.running_mean.copy_(torch.rand(c, generator=gen) * 2 - 1)
        bn.running_var.copy_(torch.rand(c, generator=gen) * 3 + 0.01)
    x = (torch.randn(n, h, w, c, generator=gen) * 3).requires_grad_(True)
    y = bn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # NHWC in and out
    dy = torch.randn(n, h, w, c, generator=gen)
    y.backward(dy)
    vals = [np.array([eps]), x.detach(), bn.weight.detach(), bn.bias.detach(),
            bn.running_mean, bn.running_var, y.detach(), dy, x.grad, bn.weight.grad, bn.bias.grad]
    flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in vals]).astype("<f4")
    np.save(os.path.join(out, "bn_desc.npy"), np.array([n * h * w, c], dtype="<i4"))
    np.save(os.path.join(out, "bn.npy"), flat)
    print("wrote %s (%d floats, torch %s)" % (out, flat.size, torch.__version__))


if __name__ == "__main__":
    main()
