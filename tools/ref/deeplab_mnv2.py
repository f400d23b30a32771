#!/usr/bin/env python3
# Copied verbatim from ../shared/reference/deeplab_mnv2.py (the project's independent PyTorch oracle), so parity tests run without ../shared.
"""DeepLabV3 + MobileNetV2 ("mobilenet_v2" model variant of TF DeepLab) in PyTorch.

Reproduces, layer for layer, the student network AMS (Adaptive Model Streaming)
uses: tensorflow/models research/deeplab with model_variant='mobilenet_v2',
i.e. the graph of the DeepLab model zoo checkpoints
`deeplabv3_mnv2_cityscapes_train` / `deeplabv3_mnv2_pascal_*`.

What is reproduced (TF scope names are kept as module names):

Backbone  (deeplab/core/feature_extractor.py -> nets/mobilenet/mobilenet_v2.py V2_DEF,
           final_endpoint='layer_18', i.e. WITHOUT the 1x1->1280 conv 'Conv_1')
  layer_1   MobilenetV2/Conv             3x3 s2 conv 3->32, BN, ReLU6
  layer_2   MobilenetV2/expanded_conv    expansion 1 (no 'expand' conv): dw3x3, BN, ReLU6,
                                         project 1x1 ->16, BN (linear), no residual
  layer_3.. MobilenetV2/expanded_conv_1..16: expand 1x1 (x6), BN, ReLU6;
  layer_18                               depthwise 3x3 (stride/rate), BN, ReLU6;
                                         project 1x1, BN (no activation);
                                         residual add when stride==1 and Cin==Cout
  * convs have no bias (normalizer_fn = batch_norm); BN eps = 1e-3 (slim default),
    BN decay 0.997 (mobilenet training_scope) -> torch momentum 0.003.
  * padding = TF 'SAME'; for the stride-2 3x3 convs on even inputs TF pads
    0 before / 1 after (asymmetric); reproduced exactly with F.pad.
  * output_stride: mobilenet_base's rule: once current_stride == output_stride,
    later stride-2 layers get stride 1 and the atrous rate is multiplied by the
    stride AFTER that layer (so the converted layer itself keeps the old rate).
    OS16: layer_15 (expanded_conv_13) -> stride 1, rate 1; layers 16-18 rate 2.
    OS8 : layer_8  (expanded_conv_6)  -> stride 1, rate 1; layers 9-14 rate 2;
          layer_15 -> stride 1, rate 2; layers 16-18 rate 4.
    Rates only apply to 3x3 (depthwise) kernels, never to 1x1.

Head  (deeplab/model.py extract_features with model_variant mobilenet_v2:
       aspp_with_batch_norm=True, atrous_rates=None, add_image_level_feature=True,
       aspp_with_concat_projection=True, decoder_output_stride=None)
  image_pooling       global average pool (image_pooling_crop_size == crop_size ==
                      input size -> pool window covers the whole map), 1x1 conv 320->256,
                      BN, ReLU, bilinear resize (align_corners=True) back to the map size
  aspp0               1x1 conv 320->256, BN, ReLU
  concat              [image_pooling, aspp0] (in this order) -> 512 channels
  concat_projection   1x1 conv 512->256, BN, ReLU, dropout keep_prob 0.9 (training only)
  logits/semantic     1x1 conv 256->num_classes WITH bias, no BN, no activation
  ASPP BatchNorms use decay 0.9997, epsilon 1e-5 (utils.get_batch_norm_params in
  model.py) -- NOT 1e-3 like the backbone.
  Final: bilinear upsample of the logits to the input size, align_corners=True
  (model.py _resize_bilinear / train_utils upsample_logits).

Not included (outside the network proper): DeepLab's input preprocessing
(x * 2/255 - 1), argmax/softmax, L2 weight decay terms.

Also provides analytic parameter and multiply-add (MAC) counting:
    python3 deeplab_mnv2.py            # prints params + MACs for 256x512 at OS8 and OS16
    python3 deeplab_mnv2.py --selftest # + checks the analytic counts against hooks
"""
import argparse
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKBONE_BN_EPS = 1e-3      # slim.batch_norm default epsilon
BACKBONE_BN_MOMENTUM = 0.003  # TF decay 0.997
ASPP_BN_EPS = 1e-5          # deeplab model.py get_batch_norm_params(epsilon=1e-5)
ASPP_BN_MOMENTUM = 0.0003   # TF decay 0.9997


def make_divisible(v, divisor, min_value=None):
    """nets/mobilenet/mobilenet.py _make_divisible."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def tf_same_padding(in_size, k, stride, dilation):
    """(pad_before, pad_after) of TF padding='SAME' along one axis."""
    eff_k = (k - 1) * dilation + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + eff_k - in_size, 0)
    return total // 2, total - total // 2


# V2_DEF spec: (op, stride, num_outputs, expansion factor) -- layer_1..layer_18.
# layer_19 (1x1 conv to 1280) is excluded: DeepLab's final_endpoint is 'layer_18'.
V2_SPEC = [
    ('conv', 2, 32, None),   # layer_1  Conv
    ('ir', 1, 16, 1),        # layer_2  expanded_conv (expand_input(1, divisible_by=1))
    ('ir', 2, 24, 6),        # layer_3  expanded_conv_1
    ('ir', 1, 24, 6),
    ('ir', 2, 32, 6),        # layer_5
    ('ir', 1, 32, 6),
    ('ir', 1, 32, 6),
    ('ir', 2, 64, 6),        # layer_8
    ('ir', 1, 64, 6),
    ('ir', 1, 64, 6),
    ('ir', 1, 64, 6),
    ('ir', 1, 96, 6),        # layer_12
    ('ir', 1, 96, 6),
    ('ir', 1, 96, 6),
    ('ir', 2, 160, 6),       # layer_15 expanded_conv_13
    ('ir', 1, 160, 6),
    ('ir', 1, 160, 6),
    ('ir', 1, 320, 6),       # layer_18 expanded_conv_16
]


def backbone_plan(output_stride=16, depth_multiplier=1.0, in_channels=3):
    """Per-layer (name, op, cin, cout, inner, stride, rate, residual) exactly as
    mobilenet_base() assigns strides/rates for a given output_stride."""
    divisible_by = 8 if depth_multiplier == 1.0 else 1
    min_depth = 8 if depth_multiplier == 1.0 else 1
    plan = []
    current_stride, rate = 1, 1
    cin = in_channels
    n_ir = 0
    for i, (op, stride, nout, t) in enumerate(V2_SPEC):
        cout = make_divisible(nout * depth_multiplier, divisible_by, min_depth)
        if output_stride is not None and current_stride == output_stride:
            layer_stride, layer_rate = 1, rate
            rate *= stride
        else:
            layer_stride, layer_rate = stride, 1
            current_stride *= stride
        if op == 'conv':
            name = 'Conv'
            plan.append(dict(name=name, op='conv', cin=cin, cout=cout, inner=None,
                             stride=layer_stride, rate=layer_rate, residual=False,
                             layer='layer_%d' % (i + 1)))
        else:
            name = 'expanded_conv' if n_ir == 0 else 'expanded_conv_%d' % n_ir
            n_ir += 1
            if t == 1:
                inner = make_divisible(cin * 1, 1)       # expand_input(1, divisible_by=1)
            else:
                inner = make_divisible(cin * t, 8)       # expand_input_by_factor(6)
            residual = (layer_stride == 1 and cin == cout)
            plan.append(dict(name=name, op='ir', cin=cin, cout=cout, inner=inner,
                             stride=layer_stride, rate=layer_rate, residual=residual,
                             layer='layer_%d' % (i + 1)))
        cin = cout
    if output_stride is not None and current_stride != output_stride:
        raise ValueError('output_stride %d not reachable' % output_stride)
    return plan


class ConvTF(nn.Conv2d):
    """nn.Conv2d with TensorFlow 'SAME' padding (asymmetric when TF pads so)."""

    def __init__(self, cin, cout, k, stride=1, dilation=1, groups=1, bias=False,
                 exact_padding=True):
        sym = ((k - 1) * dilation) // 2
        super().__init__(cin, cout, k, stride=stride, padding=sym if stride == 1 else 0,
                         dilation=dilation, groups=groups, bias=bias)
        # stride 1, odd k: SAME == symmetric padding of (k-1)*d/2 -> use built-in padding.
        self.dynamic = stride != 1
        self.exact_padding = exact_padding
        self.sym = sym

    def forward(self, x):
        if not self.dynamic:
            return super().forward(x)
        k, s, d = self.kernel_size[0], self.stride[0], self.dilation[0]
        ph = tf_same_padding(x.shape[-2], k, s, d)
        pw = tf_same_padding(x.shape[-1], k, s, d)
        if (ph[0] == ph[1] and pw[0] == pw[1]) or not self.exact_padding:
            # symmetric (or approximated as symmetric: same shapes & FLOPs, shifted taps)
            p = (ph[0], pw[0]) if self.exact_padding else (self.sym, self.sym)
            return F.conv2d(x, self.weight, self.bias, s, p, d, self.groups)
        x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, self.weight, self.bias, s, 0, d, self.groups)


class ConvBN(nn.Module):
    """slim.conv2d / separable_conv2d(num_outputs=None) + batch_norm + activation."""

    def __init__(self, cin, cout, k, stride=1, dilation=1, groups=1, act='relu6',
                 bn_eps=BACKBONE_BN_EPS, bn_momentum=BACKBONE_BN_MOMENTUM, exact_padding=True):
        super().__init__()
        self.conv = ConvTF(cin, cout, k, stride, dilation, groups, bias=False,
                           exact_padding=exact_padding)
        self.BatchNorm = nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum)
        if act == 'relu6':
            self.act = nn.ReLU6(inplace=True)
        elif act == 'relu':
            self.act = nn.ReLU(inplace=True)
        else:
            self.act = nn.Identity()

    def forward(self, x):
        return self.act(self.BatchNorm(self.conv(x)))


class ExpandedConv(nn.Module):
    """nets/mobilenet/conv_blocks.py expanded_conv (depthwise_location='expansion')."""

    def __init__(self, cin, cout, inner, stride, rate, residual, exact_padding=True):
        super().__init__()
        self.residual = residual
        if inner > cin:
            self.expand = ConvBN(cin, inner, 1)
        else:
            self.expand = None
        self.depthwise = ConvBN(inner, inner, 3, stride=stride, dilation=rate, groups=inner,
                                exact_padding=exact_padding)
        self.project = ConvBN(inner, cout, 1, act=None)

    def forward(self, x):
        y = x
        if self.expand is not None:
            y = self.expand(y)
        y = self.depthwise(y)
        y = self.project(y)
        if self.residual:
            y = y + x
        return y


class MobilenetV2(nn.Module):
    def __init__(self, output_stride=16, depth_multiplier=1.0, exact_padding=True):
        super().__init__()
        self.plan = backbone_plan(output_stride, depth_multiplier)
        layers = OrderedDict()
        for p in self.plan:
            if p['op'] == 'conv':
                layers[p['name']] = ConvBN(p['cin'], p['cout'], 3, stride=p['stride'],
                                           dilation=p['rate'], exact_padding=exact_padding)
            else:
                layers[p['name']] = ExpandedConv(p['cin'], p['cout'], p['inner'], p['stride'],
                                                 p['rate'], p['residual'],
                                                 exact_padding=exact_padding)
        self.layers = nn.Sequential(layers)
        self.out_channels = self.plan[-1]['cout']

    def forward(self, x):
        return self.layers(x)


class DeepLabV3MobileNetV2(nn.Module):
    def __init__(self, num_classes=19, output_stride=16, depth_multiplier=1.0,
                 aspp_depth=256, dropout_keep_prob=0.9, exact_padding=True):
        super().__init__()
        self.output_stride = output_stride
        self.MobilenetV2 = MobilenetV2(output_stride, depth_multiplier, exact_padding)
        c = self.MobilenetV2.out_channels
        kw = dict(act='relu', bn_eps=ASPP_BN_EPS, bn_momentum=ASPP_BN_MOMENTUM)
        self.image_pooling = ConvBN(c, aspp_depth, 1, **kw)
        self.aspp0 = ConvBN(c, aspp_depth, 1, **kw)
        self.concat_projection = ConvBN(2 * aspp_depth, aspp_depth, 1, **kw)
        self.concat_projection_dropout = nn.Dropout(p=1.0 - dropout_keep_prob)
        self.logits_semantic = nn.Conv2d(aspp_depth, num_classes, 1, bias=True)

    def forward(self, x):
        H, W = x.shape[-2:]
        f = self.MobilenetV2(x)
        h, w = f.shape[-2:]
        pool = f.mean(dim=(2, 3), keepdim=True)
        pool = self.image_pooling(pool)
        # bilinear resize of a 1x1 map with align_corners=True == broadcast
        pool = pool.expand(-1, -1, h, w)
        a0 = self.aspp0(f)
        y = torch.cat([pool, a0], dim=1)
        y = self.concat_projection(y)
        y = self.concat_projection_dropout(y)
        y = self.logits_semantic(y)
        return F.interpolate(y, size=(H, W), mode='bilinear', align_corners=True)

    def freeze_bn(self):
        """DeepLab fine_tune_batch_norm=False: BN uses moving statistics
        (eval mode) but gamma/beta stay trainable."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def tf_variable_map(self):
        """TF checkpoint variable name -> (torch tensor, kind) for weight porting.
        kind: 'conv' (HWIO -> OIHW), 'dw' (H,W,C,1 -> C,1,H,W), 'vec'."""
        m = OrderedDict()

        def convbn(prefix, mod, dw=False):
            m[prefix + ('/depthwise_weights' if dw else '/weights')] = (
                mod.conv.weight, 'dw' if dw else 'conv')
            bn = mod.BatchNorm
            m[prefix + '/BatchNorm/gamma'] = (bn.weight, 'vec')
            m[prefix + '/BatchNorm/beta'] = (bn.bias, 'vec')
            m[prefix + '/BatchNorm/moving_mean'] = (bn.running_mean, 'vec')
            m[prefix + '/BatchNorm/moving_variance'] = (bn.running_var, 'vec')

        for name, layer in self.MobilenetV2.layers.named_children():
            pre = 'MobilenetV2/' + name
            if isinstance(layer, ConvBN):
                convbn(pre, layer)
            else:
                if layer.expand is not None:
                    convbn(pre + '/expand', layer.expand)
                convbn(pre + '/depthwise', layer.depthwise, dw=True)
                convbn(pre + '/project', layer.project)
        convbn('image_pooling', self.image_pooling)
        convbn('aspp0', self.aspp0)
        convbn('concat_projection', self.concat_projection)
        m['logits/semantic/weights'] = (self.logits_semantic.weight, 'conv')
        m['logits/semantic/biases'] = (self.logits_semantic.bias, 'vec')
        return m


# --------------------------------------------------------------------------
# Analytic counting (from the layer plan only, no tracing)
# --------------------------------------------------------------------------

def layer_table(H=256, W=512, output_stride=16, num_classes=19, depth_multiplier=1.0,
                aspp_depth=256, batch=1):
    """List of conv layers with shapes, params and MACs (multiply-adds), plus
    element-wise op estimates. Spatial sizes follow TF 'SAME': out = ceil(in/stride)."""
    rows = []

    def conv(name, kind, cin, cout, k, stride, rate, groups, h, w, bias=False):
        ho, wo = -(-h // stride), -(-w // stride)
        macs = ho * wo * cout * (cin // groups) * k * k
        params = cout * (cin // groups) * k * k + (cout if bias else 0)
        rows.append(dict(name=name, kind=kind, cin=cin, cout=cout, k=k, stride=stride,
                         rate=rate, groups=groups, hin=h, win=w, hout=ho, wout=wo,
                         macs=macs * batch, params=params,
                         out_elems=ho * wo * cout * batch))
        return ho, wo

    h, w = H, W
    plan = backbone_plan(output_stride, depth_multiplier)
    for p in plan:
        pre = 'MobilenetV2/' + p['name']
        if p['op'] == 'conv':
            h, w = conv(pre, 'conv3x3', p['cin'], p['cout'], 3, p['stride'], p['rate'], 1, h, w)
            rows[-1]['bn'] = True
        else:
            if p['inner'] > p['cin']:
                conv(pre + '/expand', 'pw_expand', p['cin'], p['inner'], 1, 1, 1, 1, h, w)
                rows[-1]['bn'] = True
            h, w = conv(pre + '/depthwise', 'dw3x3', p['inner'], p['inner'], 3, p['stride'],
                        p['rate'], p['inner'], h, w)
            rows[-1]['bn'] = True
            conv(pre + '/project', 'pw_project', p['inner'], p['cout'], 1, 1, 1, 1, h, w)
            rows[-1]['bn'] = True
            rows[-1]['residual'] = p['residual']
    c = plan[-1]['cout']
    conv('image_pooling', 'aspp_1x1', c, aspp_depth, 1, 1, 1, 1, 1, 1)
    rows[-1]['bn'] = True
    conv('aspp0', 'aspp_1x1', c, aspp_depth, 1, 1, 1, 1, h, w)
    rows[-1]['bn'] = True
    conv('concat_projection', 'aspp_1x1', 2 * aspp_depth, aspp_depth, 1, 1, 1, 1, h, w)
    rows[-1]['bn'] = True
    conv('logits/semantic', 'logits_1x1', aspp_depth, num_classes, 1, 1, 1, 1, h, w, bias=True)
    return rows, (h, w)


def count(H=256, W=512, output_stride=16, num_classes=19, batch=1):
    rows, (h, w) = layer_table(H, W, output_stride, num_classes, batch=batch)
    conv_macs = sum(r['macs'] for r in rows)
    conv_params = sum(r['params'] for r in rows)
    bn_layers = [r for r in rows if r.get('bn')]
    bn_params = sum(2 * r['cout'] for r in bn_layers)      # gamma, beta (trainable)
    bn_buffers = sum(2 * r['cout'] for r in bn_layers)     # moving mean/var (frozen)
    # element-wise work (not MACs): BN (1 mul + 1 add per element, foldable into the
    # conv at inference), ReLU/ReLU6, residual adds, global average pool, and the
    # final bilinear upsample (per output element: 4 taps -> ~4 MACs).
    bn_elems = sum(r['out_elems'] for r in bn_layers)
    res_elems = sum(r['out_elems'] for r in rows if r.get('residual'))
    c = rows[-4]['cin']
    pool_adds = batch * h * w * c
    upsample_macs = batch * H * W * num_classes * 4
    by_kind = OrderedDict()
    for r in rows:
        by_kind[r['kind']] = by_kind.get(r['kind'], 0) + r['macs']
    return dict(H=H, W=W, output_stride=output_stride, batch=batch, feat_hw=(h, w),
                conv_macs=conv_macs, params_trainable=conv_params + bn_params,
                params_conv=conv_params, params_bn=bn_params, bn_buffers=bn_buffers,
                bn_elems=bn_elems, residual_elems=res_elems, pool_adds=pool_adds,
                upsample_macs=upsample_macs, macs_by_kind=by_kind, rows=rows)


def hook_count(model, H, W):
    """Cross-check: MACs of every conv actually executed, via forward hooks."""
    total = [0]

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total[0] += out.numel() * (mod.in_channels // mod.groups) * k

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.eval()
    with torch.no_grad():
        y = model(torch.zeros(1, 3, H, W))
    for h_ in hs:
        h_.remove()
    return total[0], tuple(y.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--height', type=int, default=256)
    ap.add_argument('--width', type=int, default=512)
    ap.add_argument('--num-classes', type=int, default=19)
    ap.add_argument('--table', action='store_true', help='print per-layer table')
    ap.add_argument('--selftest', action='store_true')
    a = ap.parse_args()
    H, W = a.height, a.width
    for os_ in (16, 8):
        c = count(H, W, os_, a.num_classes)
        m = DeepLabV3MobileNetV2(a.num_classes, os_)
        torch_trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        torch_buffers = sum(b.numel() for n, b in m.named_buffers() if 'running' in n)
        print('=== DeepLabV3-MobileNetV2 (TF DeepLab mobilenet_v2), input 3x%dx%d, OS %d, '
              '%d classes ===' % (H, W, os_, a.num_classes))
        print('feature map          : %dx%d x %d ch' % (c['feat_hw'][0], c['feat_hw'][1], 320))
        print('params (trainable)   : %d  (conv/logits %d + BN gamma/beta %d); torch count %d'
              % (c['params_trainable'], c['params_conv'], c['params_bn'], torch_trainable))
        print('BN moving stats      : %d (torch buffers %d)' % (c['bn_buffers'], torch_buffers))
        print('conv MACs / image    : %d  = %.4f GMAC = %.4f GFLOP (2 FLOP/MAC)'
              % (c['conv_macs'], c['conv_macs'] / 1e9, 2 * c['conv_macs'] / 1e9))
        for k, v in c['macs_by_kind'].items():
            print('   %-12s %12d MAC  (%5.1f%%)' % (k, v, 100.0 * v / c['conv_macs']))
        print('element-wise / image : BN %.1fM elems, residual adds %.1fM, global-pool adds %.2fM, '
              'final bilinear upsample ~%.1fM MAC'
              % (c['bn_elems'] / 1e6, c['residual_elems'] / 1e6, c['pool_adds'] / 1e6,
                 c['upsample_macs'] / 1e6))
        print('train step estimate  : 3 x fwd = %.3f GFLOP / image' % (6 * c['conv_macs'] / 1e9))
        if a.table:
            print('%-40s %-10s %5s %5s %3s %2s %2s %9s %9s %12s' % (
                'layer', 'kind', 'cin', 'cout', 'k', 's', 'd', 'in', 'out', 'MACs'))
            for r in c['rows']:
                print('%-40s %-10s %5d %5d %3d %2d %2d %9s %9s %12d' % (
                    r['name'], r['kind'], r['cin'], r['cout'], r['k'], r['stride'], r['rate'],
                    '%dx%d' % (r['hin'], r['win']), '%dx%d' % (r['hout'], r['wout']), r['macs']))
        if a.selftest:
            hm, shape = hook_count(m, H, W)
            assert hm == c['conv_macs'], (hm, c['conv_macs'])
            assert torch_trainable == c['params_trainable'], (torch_trainable, c['params_trainable'])
            assert shape == (1, a.num_classes, H, W), shape
            # SAME-padding check of the asymmetric stride-2 conv against a reference
            conv = m.MobilenetV2.layers.Conv.conv
            x = torch.randn(1, 3, H, W)
            # TF SAME, stride 2, even size: output i reads inputs 2i..2i+2, i.e. the
            # stride-1 'pad 1' conv sampled at odd centres 2i+1.
            ref = F.conv2d(x, conv.weight, None, 1, 1)[:, :, 1::2, 1::2]
            assert H % 2 == 0 and W % 2 == 0
            assert torch.allclose(conv(x), ref, atol=1e-4)
            print('selftest OK: hook MACs == analytic MACs, param counts match, output', shape)
        print()


if __name__ == '__main__':
    main()
