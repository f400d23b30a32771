#!/usr/bin/python3
"""write_tf_bundle.py - writes TensorFlow V2 checkpoints (tensor bundles) by hand, byte
for byte, with no TensorFlow or protobuf library: the test oracle for ams's reader.

  PREFIX.index                LevelDB-style table (TF's table format): data blocks of
                              prefix-compressed keys with restart points, an (empty)
                              metaindex block, an index block of BlockHandles, each block
                              followed by a compression byte (0) and the masked crc32c of
                              contents+type; a 48-byte footer (two BlockHandles padded to
                              40 bytes, then magic 0xdb4775248b80fb57).
                              Key "" -> BundleHeaderProto{num_shards, endianness, version};
                              key NAME -> BundleEntryProto{dtype, shape, shard_id, offset,
                              size, crc32c (masked crc32c of the tensor's bytes)}.
  PREFIX.data-0000K-of-0000N  the tensors' little-endian bytes.

  write_tf_bundle.py --like W.safetensors --prefix P --safetensors OUT [--seed S]
                     [--shards N] [--half-every K] [--block-size B] [--restart R]
                     [--slots] [--seeds DIR]
    random weights with the names and shapes of W (e.g. a DeepLab-MNV2 variable set:
    weights ~ N(0, 2/fan_in), BN gamma ~ 1, variance > 0), written as a bundle at P and
    also directly as float32 safetensors OUT (float16-stored tensors rounded as stored).
    --slots adds what real training checkpoints hold and `ams convert` must drop:
    NAME/Momentum, NAME/ExponentialMovingAverage (float32) and global_step (int64).
    --half-every K stores every K-th tensor as float16.

  write_tf_bundle.py --demo --prefix P [--seeds DIR]
    a small fixed bundle the C tests know by heart: a = 0.5*arange(6) [2,3] float32,
    b/c = [1, -2, 0.5, 65504] float16, b/c/Momentum [4] float32, global_step int64 and
    t000..t039 (t_k = [k, -k] float32), in 256-byte blocks (several data blocks, restart
    interval 4). --seeds DIR also writes fuzz seeds (index length u32 LE, index, shard 0).
"""
import argparse
import json
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- crc32c, by hand
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _TABLE.append(_c)


def crc32c(data, crc=0):
    t = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value

# ---------------------------------------------------------------- protobuf, by hand


def varint(v):
    assert v >= 0
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3 | 0) + varint(v)


def field_bytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def field_fixed32(num, v):
    return varint(num << 3 | 5) + struct.pack("<I", v)


DT_FLOAT, DT_INT64, DT_HALF = 1, 9, 19


def header_proto(num_shards):
    version = field_varint(1, 1)  # VersionDef.producer
    return field_varint(1, num_shards) + field_varint(2, 0) + field_bytes(3, version)


def entry_proto(dtype, shape, shard, offset, size, crc):
    dims = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)  # TensorShapeProto.dim
    out = field_varint(1, dtype) + field_bytes(2, dims)
    if shard:
        out += field_varint(3, shard)
    if offset:
        out += field_varint(4, offset)
    out += field_varint(5, size) + field_fixed32(6, mask(crc))
    return out

# ---------------------------------------------------------------- table, by hand


def block(entries, restart_interval):
    out, restarts, last = bytearray(), [], b""
    for i, (k, v) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(last), len(k)) and last[shared] == k[shared]:
                shared += 1
        out += varint(shared) + varint(len(k) - shared) + varint(len(v)) + k[shared:] + v
        last = k
    if not restarts:
        restarts = [0]
    for r in restarts:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


def table(items, block_size, restart_interval):
    """items: sorted (key, value) bytes pairs -> the table file's bytes."""
    out = bytearray()

    def put(contents):
        off = len(out)
        out.extend(contents)
        out.append(0)  # no compression
        out.extend(struct.pack("<I", mask(crc32c(contents + b"\x00"))))
        return varint(off) + varint(len(contents))

    index, cur, size = [], [], 0
    for k, v in items:
        cur.append((k, v))
        size += len(k) + len(v) + 8
        if size >= block_size:
            index.append((cur[-1][0], put(block(cur, restart_interval))))
            cur, size = [], 0
    if cur:
        index.append((cur[-1][0], put(block(cur, restart_interval))))
    meta = put(block([], restart_interval))
    idx = put(block(index, 1))
    footer = (meta + idx).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    out.extend(footer)
    return bytes(out)

# ---------------------------------------------------------------- bundles


def write_bundle(prefix, tensors, num_shards=1, block_size=4096, restart_interval=16):
    """tensors: {name: (dtype, np.ndarray)} -> writes PREFIX.index and data shards;
    returns (index bytes, [shard bytes])."""
    shards = [bytearray() for _ in range(num_shards)]
    items = [(b"", header_proto(num_shards))]
    for i, name in enumerate(sorted(tensors, key=lambda s: s.encode())):
        dtype, arr = tensors[name]
        np_dt = {DT_FLOAT: "<f4", DT_HALF: "<f2", DT_INT64: "<i8"}[dtype]
        raw = np.ascontiguousarray(arr, dtype=np_dt).tobytes()
        s = i % num_shards
        off = len(shards[s])
        shards[s] += raw
        items.append((name.encode(), entry_proto(dtype, arr.shape, s, off, len(raw), crc32c(raw))))
    idx = table(items, block_size, restart_interval)
    with open(prefix + ".index", "wb") as f:
        f.write(idx)
    for s in range(num_shards):
        with open("%s.data-%05d-of-%05d" % (prefix, s, num_shards), "wb") as f:
            f.write(shards[s])
    return idx, [bytes(b) for b in shards]


def read_safetensors_shapes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
    head.pop("__metadata__", None)
    return [(k, v["shape"]) for k, v in head.items()]


def write_safetensors(path, tensors):
    head, data = {}, bytearray()
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        head[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hb = json.dumps(head, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + bytes(data))


def random_value(name, shape, rng):
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "gamma":
        return rng.uniform(0.5, 1.5, shape)
    if leaf == "moving_variance":
        return rng.uniform(0.5, 1.5, shape)
    if leaf in ("beta", "moving_mean", "biases"):
        return rng.normal(0, 0.1, shape)
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    if leaf == "depthwise_weights":
        fan_in = shape[0] * shape[1]
    return rng.normal(0, np.sqrt(2.0 / max(fan_in, 1)), shape)


def demo(prefix, seeds):
    t = {
        "a": (DT_FLOAT, (0.5 * np.arange(6, dtype=np.float32)).reshape(2, 3)),
        "b/c": (DT_HALF, np.array([1, -2, 0.5, 65504], dtype=np.float16)),
        "b/c/Momentum": (DT_FLOAT, np.array([9, 9, 9, 9], dtype=np.float32)),
        "global_step": (DT_INT64, np.array(7, dtype=np.int64)),
    }
    for k in range(40):
        t["t%03d" % k] = (DT_FLOAT, np.array([k, -k], dtype=np.float32))
    idx, shards = write_bundle(prefix, t, 1, 256, 4)
    if seeds:
        import os
        os.makedirs(seeds, exist_ok=True)
        with open(os.path.join(seeds, "demo"), "wb") as f:
            f.write(struct.pack("<I", len(idx)) + idx + shards[0])
        one = {"a": t["a"], "b/c": t["b/c"]}
        idx1, sh1 = write_bundle(prefix + "-one", one, 1, 4096, 16)
        with open(os.path.join(seeds, "one_block"), "wb") as f:
            f.write(struct.pack("<I", len(idx1)) + idx1 + sh1[0])
        with open(os.path.join(seeds, "truncated"), "wb") as f:
            f.write(struct.pack("<I", len(idx1) - 9) + idx1[:-9] + sh1[0])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--like")
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--seeds")
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--safetensors")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--half-every", type=int, default=0)
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--restart", type=int, default=16)
    ap.add_argument("--slots", action="store_true")
    a = ap.parse_args()
    if a.demo:
        return demo(a.prefix, a.seeds)
    if not a.like or not a.safetensors:
        ap.error("--like and --safetensors are required (or --demo)")
    rng = np.random.default_rng(a.seed)
    bundle, direct = {}, []
    for i, (name, shape) in enumerate(read_safetensors_shapes(a.like)):
        v = random_value(name, shape, rng).astype(np.float32)
        half = a.half_every and i % a.half_every == 0
        if half:
            v = v.astype(np.float16)
        bundle[name] = (DT_HALF if half else DT_FLOAT, v)
        direct.append((name, v.astype(np.float32)))
        if a.slots:
            bundle[name + "/Momentum"] = (DT_FLOAT, rng.normal(0, 1, shape).astype(np.float32))
            bundle[name + "/ExponentialMovingAverage"] = (DT_FLOAT, (v + 1).astype(np.float32))
    if a.slots:
        bundle["global_step"] = (DT_INT64, np.array(30000, dtype=np.int64))
    write_bundle(a.prefix, bundle, a.shards, a.block_size, a.restart)
    write_safetensors(a.safetensors, direct)
    print("write_tf_bundle: %d tensors in %d shard(s) at %s" % (len(bundle), a.shards, a.prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
