#!/usr/bin/python3
"""make_loss_fixtures.py - PyTorch oracle for the reference loss kernels (src/nn/ref/losses.c).

Writes tests/data/losses/: softmax cross-entropy with ignore_index=255, the same on a class
subset, and binary cross-entropy on logits, each with its loss, counted pixels and
d loss / d logits from torch autograd (d loss = 1). Run with Debian's interpreter (it has
torch + numpy):

    /usr/bin/python3 tools/ref/make_loss_fixtures.py [--out tests/data/losses]

Each case writes three .npy files, read by tests/test_ref_losses.c:
  <case>_desc.npy    int32 [p, c, nsub, count, classes[0..nsub)]
  <case>_labels.npy  uint8 (p)
  <case>.npy         float32, concatenated: logits (p,c), grad (p,c), loss (1)
Cases: ce, cehuge (logits of magnitude 1e4), sub (class subset), bce, bcehuge (c = 1).
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F


def write_case(out, name, x, lab, loss, count, grad, classes=()):
    p = lab.shape[0]
    c = x.shape[1] if x.dim() == 2 else 1
    desc = np.array([p, c, len(classes), count] + list(classes), dtype="<i4")
    vals = np.concatenate([x.numpy().ravel(), grad.numpy().ravel(), [loss.item()]]).astype("<f4")
    np.save(os.path.join(out, name + "_desc.npy"), desc)
    np.save(os.path.join(out, name + "_labels.npy"), lab.numpy().astype("u1"))
    np.save(os.path.join(out, name + ".npy"), vals)


def labels_with_ignore(gen, p, c, ignore_frac):
    lab = torch.randint(0, c, (p,), generator=gen)
    ign = torch.rand(p, generator=gen) < ignore_frac
    lab[ign] = 255
    return lab


def ce_loss_grad(x, lab):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(x, lab.long(), ignore_index=255, reduction="mean")
    loss.backward()
    count = int((lab != 255).sum())
    return x.detach(), lab, loss.detach(), count, x.grad


def ce_case(gen, p, c):
    """Full softmax over c classes, labels 255 ignored."""
    x = torch.randn(p, c, generator=gen) * 3.0
    x[1, 2] = 40.0
    return ce_loss_grad(x, labels_with_ignore(gen, p, c, 0.25))


def ce_huge_case():
    """Logits of magnitude 1e4: log-sum-exp must stay finite and exact."""
    x = torch.zeros(5, 7)
    x[0] = torch.linspace(-1e4, 1e4, 7)  # very wrong label: loss ~ 1.67e4
    x[1] = 1e4                           # all equal: loss ln 7
    x[2] = -1e4
    x[2, 4] = 0.0                        # right label by 1e4: loss ~ 0
    x[3] = 1e4                           # ignored
    x[4] = torch.tensor([1e4, 1e4 - 1, -1e4, 0.0, 1e4 - 2, 5.0, -5.0])
    lab = torch.tensor([1, 3, 4, 255, 1], dtype=torch.uint8)
    return ce_loss_grad(x, lab)


def subset_case(gen, p, c, classes):
    """Softmax over the subset's columns only; pixels whose label is not in the subset do
    not count: cross_entropy on the sliced logits with labels remapped (others -> 255)."""
    x = torch.randn(p, c, generator=gen) * 2.0
    lab = labels_with_ignore(gen, p, c, 0.2)
    remap = torch.full((256,), 255, dtype=torch.long)
    for s, k in enumerate(classes):
        remap[k] = s
    sub_lab = remap[lab.long()]
    x.requires_grad_(True)
    loss = F.cross_entropy(x[:, classes], sub_lab, ignore_index=255, reduction="mean")
    loss.backward()
    count = int((sub_lab != 255).sum())
    return x.detach(), lab, loss.detach(), count, x.grad


def bce_loss_grad(x, lab):
    keep = lab != 255
    x = x.clone().requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(x[keep], lab[keep].float(), reduction="mean")
    loss.backward()
    return x.detach(), lab, loss.detach(), int(keep.sum()), x.grad


def bce_case(gen, p):
    x = torch.randn(p, generator=gen) * 4.0
    x[0] = 30.0
    x[1] = -30.0
    lab = torch.randint(0, 2, (p,), generator=gen)
    lab[torch.rand(p, generator=gen) < 0.2] = 255
    lab[:2] = torch.tensor([1, 0])
    return bce_loss_grad(x, lab)


def bce_huge_case():
    """Logits of magnitude 1e4 on both sides of both labels."""
    x = torch.tensor([1e4, -1e4, 1e4, -1e4, 30.0, -30.0, 0.0])
    lab = torch.tensor([0, 1, 1, 0, 0, 1, 255], dtype=torch.uint8)
    return bce_loss_grad(x, lab)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "tests/data/losses"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(20261125)
    write_case(out, "ce", *ce_case(gen, 37, 7))
    write_case(out, "cehuge", *ce_huge_case())
    classes = [5, 1, 3, 0]  # unsorted on purpose: column order follows classes[]
    write_case(out, "sub", *subset_case(gen, 45, 7, classes), classes=classes)
    write_case(out, "bce", *bce_case(gen, 41))
    write_case(out, "bcehuge", *bce_huge_case())
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print("wrote %s (%d bytes, torch %s)" % (out, total, torch.__version__))


if __name__ == "__main__":
    main()
