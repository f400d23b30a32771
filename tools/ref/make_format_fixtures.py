#!/usr/bin/python3
"""make_format_fixtures.py - writes the .npy / .safetensors test fixtures and fuzz seeds.

Run with Debian's interpreter (it has numpy): /usr/bin/python3 tools/ref/make_format_fixtures.py
The .npy files come from numpy itself (np.save / np.lib.format.write_array), so they are
what real users hand us. The .safetensors files are written here byte by byte following
the format spec (u64 LE header length, compact JSON, spaces to an 8-byte boundary, data),
because Debian has no safetensors package; F16/BF16 payloads are raw bit patterns chosen
to cover subnormals, infinities, negative zero and NaN.
Outputs: tests/data/formats/*, fuzz/corpus/{npy,safetensors,safetensors_roundtrip}/*.
"""
import io
import json
import os
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "formats")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    assert len(data) < 4096, path


def npy_bytes(arr, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, arr)
    else:
        np.lib.format.write_array(b, arr, version=version)
    return b.getvalue()


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes) in file order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def raw_st(header_text, data=b""):
    h = header_text.encode()
    return struct.pack("<Q", len(h)) + h + data


def main():
    # ---- .npy written by numpy ----
    npys = {
        "f32_2x3.npy": np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.5) - 1,
        "u8_5.npy": np.array([0, 1, 127, 128, 255], dtype=np.uint8),
        "i32_scalar.npy": np.array(-123456789, dtype=np.int32),
        "f32_0x3.npy": np.zeros((0, 3), dtype=np.float32),
        "f32_1x2x3x4.npy": (np.arange(24, dtype=np.float32) / 8).reshape(1, 2, 3, 4),
        "f8_3.npy": np.array([1.5, -2.25, 1e-3], dtype=np.float64),
        "f8_big.npy": np.array([0.0, 1e300], dtype=np.float64),
        "i8_3.npy": np.array([-2147483648, 0, 2147483647], dtype=np.int64),
        "i8_big.npy": np.array([1, 2 ** 40], dtype=np.int64),
        "f2_4.npy": np.array([1.0, -0.0, 65504.0, 2.0 ** -24], dtype=np.float16),
        "fortran.npy": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "be_f4.npy": np.arange(3, dtype=">f4"),
        "f64c.npy": np.arange(2, dtype=np.complex64),
    }
    for name, arr in npys.items():
        put(os.path.join(DATA, name), npy_bytes(arr))
    put(os.path.join(DATA, "f32_v2.npy"), npy_bytes(np.arange(4, dtype=np.float32), (2, 0)))
    put(os.path.join(DATA, "f32_v3.npy"), npy_bytes(np.arange(4, dtype=np.float32), (3, 0)))

    # ---- .safetensors per the spec ----
    multi = [
        ("a/weights", "F32", (2, 3), (np.arange(6, dtype="<f4") * 0.25).tobytes()),
        ("b", "U8", (4,), bytes([0, 7, 200, 255])),
        ("c", "I32", (), struct.pack("<i", -5)),
        ("d", "F32", (0, 2), b""),
    ]
    put(os.path.join(DATA, "multi.safetensors"),
        safetensors_bytes(multi, {"format": "pt", "note": "ams"}))
    f16 = [0x0001, 0x03FF, 0x7C00, 0xFC00, 0x8000, 0x3C00, 0x7BFF, 0xC000, 0x7E00]
    st_f16 = safetensors_bytes([("h", "F16", (3, 3), struct.pack("<9H", *f16))])
    # cross-check our bit patterns against numpy's own float16 decoding
    got = np.frombuffer(struct.pack("<9H", *f16), dtype="<f2").astype(np.float32)
    want = [2.0 ** -24, 1023 * 2.0 ** -24, np.inf, -np.inf, -0.0, 1.0, 65504.0, -2.0]
    assert np.array_equal(got[:8], np.array(want, np.float32)) and np.isnan(got[8])
    put(os.path.join(DATA, "f16.safetensors"), st_f16)
    bf16 = [0x3F80, 0xC000, 0x0001, 0x7F80, 0x8000, 0x4049]
    put(os.path.join(DATA, "bf16.safetensors"),
        safetensors_bytes([("g", "BF16", (6,), struct.pack("<6H", *bf16))]))
    # JSON order differs from data order: readers must keep the JSON order
    hdr = ('{"second":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
           '"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}')
    put(os.path.join(DATA, "order.safetensors"),
        raw_st(hdr, struct.pack("<4f", 1, 2, 3, 4)))
    # a corrupt file for the CLI test: header length larger than the file
    put(os.path.join(DATA, "corrupt.safetensors"), struct.pack("<Q", 4096) + b'{"a":1}')

    # ---- fuzz seeds ----
    npy_seeds = dict(npys)
    for name, arr in npy_seeds.items():
        put(os.path.join(CORPUS, "npy", name), npy_bytes(arr))
    put(os.path.join(CORPUS, "npy", "v2.npy"), npy_bytes(np.arange(4, dtype=np.float32), (2, 0)))
    put(os.path.join(CORPUS, "npy", "v3.npy"), npy_bytes(np.arange(4, dtype=np.float32), (3, 0)))
    good = npy_bytes(np.arange(6, dtype=np.float32).reshape(2, 3))
    put(os.path.join(CORPUS, "npy", "truncated.npy"), good[:-5])
    put(os.path.join(CORPUS, "npy", "trailing.npy"), good + b"xx")
    hand = b'{"shape":(2L,3L,),"fortran_order":False,"descr":"<i4",} \n'
    put(os.path.join(CORPUS, "npy", "hand.npy"),
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hand)) + hand + bytes(24))
    st = os.path.join(CORPUS, "safetensors")
    for name in ("multi", "f16", "bf16", "order", "corrupt"):
        with open(os.path.join(DATA, name + ".safetensors"), "rb") as f:
            put(os.path.join(st, name + ".safetensors"), f.read())
    put(os.path.join(st, "overlap.safetensors"),
        raw_st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
               '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', bytes(8)))
    put(os.path.join(st, "dup.safetensors"),
        raw_st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
               '"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)))
    put(os.path.join(st, "huge.safetensors"),
        raw_st('{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}'))
    put(os.path.join(st, "meta.safetensors"),
        raw_st('{"__metadata__":{"k":"v","\\u00e9":"\\n"},"x\\ty":{"dtype":"I32","shape":[1,1],'
               '"data_offsets":[0,4],"extra":[1]}}', bytes(4)))
    put(os.path.join(st, "array.safetensors"), raw_st("[1,2,3]"))
    rt = os.path.join(CORPUS, "safetensors_roundtrip")
    rng = np.random.default_rng(1)
    for i in range(4):
        put(os.path.join(rt, "seed%d" % i), rng.integers(0, 256, 64 * (i + 1), dtype=np.uint8).tobytes())
    put(os.path.join(rt, "zeros"), bytes(32))


if __name__ == "__main__":
    main()
