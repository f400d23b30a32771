#!/usr/bin/python3
"""deeplab_xception65.py - DeepLabV3+ with the Xception-65 backbone in PyTorch.

An independent model of TF DeepLab's model_variant='xception_65' (the AMS
paper's teacher, model zoo checkpoint xception65_cityscapes_trainfine), with TF
scope names, written from research/deeplab/core/xception.py, model.py,
feature_extractor.py and utils.py. The engine's builder
(src/models/deeplab_xception65.c) is checked against it.

Backbone (xception.py xception_65, all BN eps 1e-3, convs without bias):
  entry_flow/conv1_1   3x3 s2 conv 3->32 (conv2d_same: explicit symmetric pad 1,
                       then VALID), BN, ReLU
  entry_flow/conv1_2   3x3 s1 conv 32->64 SAME, BN, ReLU
  blocks of one or more xception modules, scope
      xception_65/<flow>/<block>/unit_<i>/xception_module/...:
    entry_flow/block1  [128,128,128]  shortcut 1x1 conv (stride 2) + BN, stride 2
    entry_flow/block2  [256,256,256]  shortcut, stride 2
    entry_flow/block3  [728,728,728]  shortcut, stride 2
    middle_flow/block1 [728,728,728]  x16 units, identity residual
    exit_flow/block1   [728,1024,1024] shortcut, stride 2
    exit_flow/block2   [1536,1536,2048] no residual, ReLU inside the separable convs
  A module: three separable convs separable_conv{1,2,3}, each split into
  <name>_depthwise (3x3 depthwise, BN) and <name>_pointwise (1x1 conv, BN).
  activation_fn_in_separable_conv=False (all but exit block2): ReLU on the
  input of each separable conv, no activation after its BNs. True (exit
  block2): no ReLU before, ReLU after both BNs. Only separable_conv3 strides;
  a strided one pads explicitly (fixed_padding: symmetric (k_eff-1)/2) then
  VALID, otherwise SAME. The shortcut is a 1x1 conv (TF SAME, no padding) of
  the module input, BN, no activation.
  Output stride (stack_blocks_dense, with the root's factor 2 taken out first):
  once the blocks' stride reaches OS/2, later strides become 1 and the rate
  multiplies by the stride AFTER the converted unit. OS16: exit block1 stride 1
  rate 1, exit block2 rate 2. OS8: entry block3 stride 1 rate 1, middle and
  exit block1 rate 2, exit block2 rate 4. multi_grid None = unit rates 1,1,1.

Head (model.py, BN eps 1e-5, ReLU after every BN):
  image_pooling        global mean, 1x1 conv 2048->256, BN, ReLU, broadcast back
  aspp0                1x1 conv 2048->256
  aspp{1,2,3}          split separable conv (<s>_depthwise 3x3 at rate 6/12/18
                       (OS16) or 12/24/36 (OS8), SAME; <s>_pointwise 1x1 ->256)
  concat_projection    concat [image_pooling, aspp0..3] (1280) -> 1x1 256,
                       dropout keep 0.9 (training only)
  decoder (decoder_output_stride 4, decoder_use_separable_conv):
    decoder/feature_projection0  1x1 conv 256->48 of the end point
        entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise
        (its BN output, before any ReLU)
    both resized (bilinear, align_corners) to scale_dimension(H, 1/4) =
    int((H-1)/4 + 1); concat [ASPP output, projection] (304)
    decoder/decoder_conv0, decoder/decoder_conv1: split separable convs 256, rate 1
  logits/semantic      1x1 conv 256->classes with bias
  final bilinear resize (align_corners) to the input size.

Not included: preprocessing x/127.5 - 1 (applied by the caller), softmax.

    python3 deeplab_xception65.py      # parameter count and the layer plan summary
"""
import argparse
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKBONE_BN_EPS = 1e-3   # feature_extractor: xception arg scope, batch_norm_epsilon 1e-3
HEAD_BN_EPS = 1e-5       # model.py utils.get_batch_norm_params(epsilon=1e-5)
ASPP_DEPTH = 256
DECODER_DEPTH = 256
PROJECTION_DEPTH = 48
DECODER_OUTPUT_STRIDE = 4
LOW_LEVEL = 'entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise'

# (scope, depth_list, skip ('conv' | 'sum' | 'none'), relu inside, units, stride)
BLOCKS = [
    ('entry_flow/block1', (128, 128, 128), 'conv', False, 1, 2),
    ('entry_flow/block2', (256, 256, 256), 'conv', False, 1, 2),
    ('entry_flow/block3', (728, 728, 728), 'conv', False, 1, 2),
    ('middle_flow/block1', (728, 728, 728), 'sum', False, 16, 1),
    ('exit_flow/block1', (728, 1024, 1024), 'conv', False, 1, 2),
    ('exit_flow/block2', (1536, 1536, 2048), 'none', True, 1, 1),
]


def tf_same_pads(n, k, stride, rate):
    """(before, after) of TF 'SAME' along an axis of length n."""
    keff = (k - 1) * rate + 1
    out = -(-n // stride)
    total = max((out - 1) * stride + keff - n, 0)
    return total // 2, total - total // 2


def scale_dimension(dim, scale):
    """model.py scale_dimension for a static size."""
    return int((float(dim) - 1.0) * scale + 1.0)


def unit_plan(output_stride):
    """[(scope, depth_list, skip, relu_inside, stride, rate)] per unit, as
    stack_blocks_dense assigns them (output_stride already halved for the root)."""
    target = output_stride // 2
    current, rate = 1, 1
    plan = []
    for scope, depths, skip, inside, units, stride in BLOCKS:
        for u in range(units):
            name = '%s/unit_%d/xception_module' % (scope, u + 1)
            if current == target:
                plan.append((name, depths, skip, inside, 1, rate))
                rate *= stride
            else:
                plan.append((name, depths, skip, inside, stride, 1))
                current *= stride
    if current != target:
        raise ValueError('output stride %d not reachable' % output_stride)
    return plan


class Conv(nn.Conv2d):
    """Convolution with TF padding: 'same' (TF SAME, asymmetric when TF pads so)
    or 'fixed' (xception/resnet fixed_padding: symmetric (k_eff-1)/2, then VALID)."""

    def __init__(self, cin, cout, k, stride=1, rate=1, groups=1, bias=False, pad='same'):
        super().__init__(cin, cout, k, stride=stride, padding=0, dilation=rate, groups=groups,
                         bias=bias)
        self.pad = pad

    def forward(self, x):
        k, s, r = self.kernel_size[0], self.stride[0], self.dilation[0]
        if self.pad == 'fixed':
            total = (k - 1) * r
            ph = pw = (total // 2, total - total // 2)
        else:
            ph = tf_same_pads(x.shape[-2], k, s, r)
            pw = tf_same_pads(x.shape[-1], k, s, r)
        if any(ph) or any(pw):
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, self.weight, self.bias, s, 0, r, self.groups)


class ConvBN(nn.Module):
    """slim conv2d / separable_conv2d(num_outputs=None) + batch_norm (+ ReLU).
    feeds_relu: the BN output goes into a ReLU (here or in the next layer); the
    fixture generator keeps such values off the kink."""

    def __init__(self, cin, cout, k, stride=1, rate=1, depthwise=False, relu=False,
                 eps=BACKBONE_BN_EPS, pad='same', feeds_relu=None):
        super().__init__()
        self.depthwise = depthwise
        self.conv = Conv(cin, cout, k, stride, rate, groups=cin if depthwise else 1, pad=pad)
        self.BatchNorm = nn.BatchNorm2d(cout, eps=eps)
        self.relu = relu
        self.feeds_relu = relu if feeds_relu is None else feeds_relu

    def forward(self, x):
        y = self.BatchNorm(self.conv(x))
        return F.relu(y) if self.relu else y


class SeparableConv(nn.Module):
    """split separable conv: <name>_depthwise (3x3, BN) + <name>_pointwise (1x1, BN)."""

    def __init__(self, cin, cout, stride=1, rate=1, relu=False, eps=BACKBONE_BN_EPS,
                 pad='same', feeds_relu=None):
        super().__init__()
        self.depthwise = ConvBN(cin, cin, 3, stride, rate, depthwise=True, relu=relu, eps=eps,
                                pad=pad)
        self.pointwise = ConvBN(cin, cout, 1, relu=relu, eps=eps, feeds_relu=feeds_relu)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionModule(nn.Module):
    def __init__(self, cin, depths, skip, relu_inside, stride, rate):
        super().__init__()
        self.skip, self.relu_inside = skip, relu_inside
        convs = []
        c = cin
        for i, d in enumerate(depths):
            s = stride if i == 2 else 1
            # without ReLU inside, each separable conv ReLUs its own input
            feeds = relu_inside or i < 2
            convs.append(SeparableConv(c, d, s, rate, relu=relu_inside,
                                       pad='fixed' if s > 1 else 'same', feeds_relu=feeds))
            c = d
        self.sep = nn.ModuleList(convs)
        self.shortcut = ConvBN(cin, depths[-1], 1, stride) if skip == 'conv' else None
        self.feeds_relu = False     # set by the network: the next module ReLUs this output
        self.low_level = None       # separable_conv2_pointwise output, kept for the decoder

    def forward(self, x):
        y = x
        for i, conv in enumerate(self.sep):
            if not self.relu_inside:
                y = F.relu(y)
            y = conv(y)
            if i == 1:
                self.low_level = y
        if self.skip == 'conv':
            y = y + self.shortcut(x)
        elif self.skip == 'sum':
            y = y + x
        return y


class DeepLabV3PlusXception65(nn.Module):
    def __init__(self, num_classes=19, output_stride=16, dropout_keep_prob=0.9):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError('output stride must be 8 or 16')
        self.output_stride = output_stride
        self.conv1_1 = ConvBN(3, 32, 3, 2, relu=True, pad='fixed')
        self.conv1_2 = ConvBN(32, 64, 3, 1, relu=True)
        self.plan = unit_plan(output_stride)
        units = OrderedDict()
        c = 64
        for name, depths, skip, inside, stride, rate in self.plan:
            units[name] = XceptionModule(c, depths, skip, inside, stride, rate)
            c = depths[-1]
        self.names = list(units)
        self.units = nn.ModuleList(units.values())
        for u, nxt in zip(self.units[:-1], self.units[1:]):
            u.feeds_relu = not nxt.relu_inside
        self.low_level_index = self.names.index(LOW_LEVEL.rsplit('/', 1)[0])
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        kw = dict(relu=True, eps=HEAD_BN_EPS)
        self.image_pooling = ConvBN(c, ASPP_DEPTH, 1, **kw)
        self.aspp0 = ConvBN(c, ASPP_DEPTH, 1, **kw)
        self.aspp = nn.ModuleList(SeparableConv(c, ASPP_DEPTH, 1, r, **kw) for r in rates)
        self.concat_projection = ConvBN(5 * ASPP_DEPTH, ASPP_DEPTH, 1, **kw)
        self.dropout = nn.Dropout(p=1.0 - dropout_keep_prob)
        low_c = BLOCKS[1][1][1]
        self.feature_projection0 = ConvBN(low_c, PROJECTION_DEPTH, 1, **kw)
        self.decoder_conv0 = SeparableConv(ASPP_DEPTH + PROJECTION_DEPTH, DECODER_DEPTH, **kw)
        self.decoder_conv1 = SeparableConv(DECODER_DEPTH, DECODER_DEPTH, **kw)
        self.logits_semantic = nn.Conv2d(DECODER_DEPTH, num_classes, 1, bias=True)

    def forward(self, x):
        H, W = x.shape[-2:]
        y = self.conv1_2(self.conv1_1(x))
        for u in self.units:
            y = u(y)
        low = self.units[self.low_level_index].low_level
        h, w = y.shape[-2:]
        pool = self.image_pooling(y.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, h, w)
        branches = [pool, self.aspp0(y)] + [a(y) for a in self.aspp]
        y = self.dropout(self.concat_projection(torch.cat(branches, 1)))
        dh = scale_dimension(H, 1.0 / DECODER_OUTPUT_STRIDE)
        dw = scale_dimension(W, 1.0 / DECODER_OUTPUT_STRIDE)
        feats = [y, self.feature_projection0(low)]
        feats = [f if tuple(f.shape[-2:]) == (dh, dw) else
                 F.interpolate(f, size=(dh, dw), mode='bilinear', align_corners=True)
                 for f in feats]
        y = self.decoder_conv1(self.decoder_conv0(torch.cat(feats, 1)))
        y = self.logits_semantic(y)
        return F.interpolate(y, size=(H, W), mode='bilinear', align_corners=True)

    def freeze_bn(self):
        """fine_tune_batch_norm=False: moving statistics, trainable gamma/beta."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def relu_sources(self):
        """(module, kind) for every tensor that feeds a ReLU: ('bn', ConvBN) whose BN
        output is ReLU'd, ('unit', XceptionModule) whose output the next unit ReLUs
        (its last pointwise BN beta shifts that output per channel)."""
        out = []
        for m in self.modules():
            if isinstance(m, ConvBN) and m.feeds_relu:
                out.append(('bn', m))
            elif isinstance(m, XceptionModule) and m.feeds_relu:
                out.append(('unit', m))
        return out

    def tf_variable_map(self):
        """TF variable name -> (torch tensor, kind); kind 'conv' (HWIO <-> OIHW),
        'dw' ([kh,kw,c,1] <-> [c,1,kh,kw]) or 'vec'. In TF's creation order."""
        m = OrderedDict()

        def convbn(prefix, mod):
            m[prefix + ('/depthwise_weights' if mod.depthwise else '/weights')] = (
                mod.conv.weight, 'dw' if mod.depthwise else 'conv')
            bn = mod.BatchNorm
            m[prefix + '/BatchNorm/gamma'] = (bn.weight, 'vec')
            m[prefix + '/BatchNorm/beta'] = (bn.bias, 'vec')
            m[prefix + '/BatchNorm/moving_mean'] = (bn.running_mean, 'vec')
            m[prefix + '/BatchNorm/moving_variance'] = (bn.running_var, 'vec')

        def sep(prefix, mod):
            convbn(prefix + '_depthwise', mod.depthwise)
            convbn(prefix + '_pointwise', mod.pointwise)

        convbn('xception_65/entry_flow/conv1_1', self.conv1_1)
        convbn('xception_65/entry_flow/conv1_2', self.conv1_2)
        for name, u in zip(self.names, self.units):
            pre = 'xception_65/' + name
            for i, s in enumerate(u.sep):
                sep('%s/separable_conv%d' % (pre, i + 1), s)
            if u.shortcut is not None:
                convbn(pre + '/shortcut', u.shortcut)
        convbn('image_pooling', self.image_pooling)
        convbn('aspp0', self.aspp0)
        for i, a in enumerate(self.aspp):
            sep('aspp%d' % (i + 1), a)
        convbn('concat_projection', self.concat_projection)
        convbn('decoder/feature_projection0', self.feature_projection0)
        sep('decoder/decoder_conv0', self.decoder_conv0)
        sep('decoder/decoder_conv1', self.decoder_conv1)
        m['logits/semantic/weights'] = (self.logits_semantic.weight, 'conv')
        m['logits/semantic/biases'] = (self.logits_semantic.bias, 'vec')
        return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--os', type=int, default=16, choices=(8, 16))
    ap.add_argument('--classes', type=int, default=19)
    ap.add_argument('--size', type=int, default=65)
    a = ap.parse_args()
    m = DeepLabV3PlusXception65(a.classes, a.os).eval()
    vm = m.tf_variable_map()
    n = sum(t.numel() for name, (t, k) in vm.items())
    print('%d tensors, %d values (%.2f M)' % (len(vm), n, n / 1e6))
    for name, depths, skip, inside, stride, rate in m.plan:
        if not name.startswith('middle_flow') or name.endswith('unit_1/xception_module'):
            print('  %-48s %s %-4s stride %d rate %d' % (name, depths, skip, stride, rate))
    with torch.no_grad():
        y = m(torch.zeros(1, 3, a.size, a.size))
    print('output', tuple(y.shape))


if __name__ == '__main__':
    main()
