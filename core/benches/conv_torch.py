#!/usr/bin/env python3
"""The convolutions (and BatchNorm + ReLU) of the CIFAR networks in PyTorch (CPU, f32), for the
side-by-side table printed by `cargo bench -p lrnn-core --bench conv`.

Usage: conv_torch.py B C H W O RUNS THREADS -> one JSON line: median ms of a 3x3 convolution
(padding 1, no bias) forward and forward+backward, and of BatchNorm (training mode) + ReLU
forward and forward+backward on the input. Backward from L = sum(output * R), as in the Rust
side (candle's backward starts from a scalar).
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def median_ms(runs, f):
    f()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    b, c, h, w, o, runs, threads = (int(a) for a in sys.argv[1:8])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(b, c, h, w, requires_grad=True)
    wt = (torch.randn(o, c, 3, 3) / (9 * c) ** 0.5).requires_grad_()
    g = torch.randn(b, o, h, w)
    gamma, beta = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
    gx = torch.randn(b, c, h, w)

    def conv_fwd():
        with torch.no_grad():
            F.conv2d(x, wt, padding=1)

    def conv_both():
        x.grad = wt.grad = None
        (F.conv2d(x, wt, padding=1) * g).sum().backward()

    def bn_fwd():
        with torch.no_grad():
            F.relu(F.batch_norm(x, None, None, gamma, beta, True))

    def bn_both():
        x.grad = gamma.grad = beta.grad = None
        (F.relu(F.batch_norm(x, None, None, gamma, beta, True)) * gx).sum().backward()

    print(json.dumps({"conv_fwd": median_ms(runs, conv_fwd), "conv_both": median_ms(runs, conv_both),
                      "bn_fwd": median_ms(runs, bn_fwd), "bn_both": median_ms(runs, bn_both),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
