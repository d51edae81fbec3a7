#!/usr/bin/env python3
"""Long et al.'s FCN-8s (VGG-16 widths, fc 4096, 21 classes) forward in PyTorch (CPU, f32) on one
500x375 input, for `cargo bench -p lrnn-core --bench fcn_caffe`. The network is the reference of
the parity fixtures (tests/fixtures/gen_fcn_caffe.py, imported from there).

Usage: fcn_caffe_torch.py VARIANT RUNS THREADS -> one JSON line (median ms, parameters).
"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures"))
from gen_fcn_caffe import FcnCaffe, randomise  # noqa: E402

variant, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.set_grad_enabled(False)
model = FcnCaffe(variant, 21, 4096, [64, 128, 256, 512, 512]).eval()
randomise(model, 1)
x = torch.randn(1, 3, 375, 500) * 50
model(x)
times = []
for _ in range(runs):
    t = time.perf_counter()
    model(x)
    times.append(1e3 * (time.perf_counter() - t))
print(json.dumps({"forward_ms": statistics.median(times), "parameters": sum(p.numel() for p in model.parameters())}))
