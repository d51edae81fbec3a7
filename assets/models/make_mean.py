#!/usr/bin/env python3
"""Writes mean.safetensors (tensor `mean`, the flattened [C, H, W] mean training image in [0, 1])
for a bundled Fashion-MNIST checkpoint whose run predates mean files: the mean of the first N
training images, zero-padded to 32x32, exactly as `lrnn train --max-train N` computed it.

Usage: make_mean.py FASHION_MNIST_DIR N OUT
"""
import gzip
import json
import struct
import sys

import numpy as np


def main():
    src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with gzip.open(f"{src}/train-images-idx3-ubyte.gz") as f:
        raw = f.read()
    count, h, w = struct.unpack(">III", raw[4:16])
    imgs = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, h, w)[:n]
    padded = np.zeros((n, 32, 32), dtype=np.float64)
    padded[:, 2:30, 2:30] = imgs
    mean = (padded.sum(axis=0) / (n * 255.0)).astype("<f4").reshape(-1)
    data = mean.tobytes()
    header = json.dumps({"mean": {"dtype": "F32", "shape": [mean.size], "data_offsets": [0, len(data)]}},
                        separators=(",", ":")).encode()
    header += b" " * ((8 - len(header) % 8) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


if __name__ == "__main__":
    main()
