#!/usr/bin/env python3
"""The L-RNN module of the benchmark in PyTorch (CPU, f32), for the side-by-side table printed by
`cargo bench -p lrnn-core --bench lrnn_module`. Same computation: vanilla cell, sum merge, each
direction owning U, b, V; per step one [N, D] x [D, D] product for all rows of a direction.

Usage: lrnn_module_torch.py B C H W D RUNS  -> prints one JSON line with medians in ms and the
peak RSS growth in MiB.
"""
import json
import resource
import statistics
import sys
import time

import torch


def scan(xi, v, reverse):
    n, t_len, d = xi.shape
    h = xi.new_zeros(n, d)
    out = [None] * t_len
    for i in range(t_len):
        t = t_len - 1 - i if reverse else i
        h = torch.relu(xi[:, t] + h @ v.T) if i else torch.relu(xi[:, t])
        out[t] = h
    return torch.stack(out, dim=1)


def pair(x, u, b, v, horizontal):
    xs = x.permute(0, 2, 3, 1) if horizontal else x.permute(0, 3, 2, 1)
    bsz, s, t, c = xs.shape
    xi = (xs.reshape(bsz * s, t, c) @ u.T + b)  # both directions at once: [N, T, 2D]
    d = v[0].shape[0]
    h = scan(xi[..., :d], v[0], False) + scan(xi[..., d:], v[1], True)
    h = h.reshape(bsz, s, t, d)
    return h.permute(0, 3, 1, 2) if horizontal else h.permute(0, 3, 2, 1)


def main():
    bsz, c, hgt, wid, d, runs = map(int, sys.argv[1:7])
    torch.set_num_threads(int(sys.argv[7]) if len(sys.argv) > 7 else torch.get_num_threads())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(bsz, c, hgt, wid, generator=g, requires_grad=True)
    params = []
    for cin in (c, d):
        u = ((torch.rand(2 * d, cin, generator=g) - 0.5) / cin ** 0.5).requires_grad_(True)
        b = torch.zeros(2 * d, requires_grad=True)
        v = [((torch.rand(d, d, generator=g) - 0.5) / d ** 0.5).requires_grad_(True) for _ in range(2)]
        params.append((u, b, v))

    def forward():
        (u1, b1, v1), (u2, b2, v2) = params
        return pair(pair(x, u1, b1, v1, True), u2, b2, v2, False)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        forward()
        fwd = []
        for _ in range(runs):
            t0 = time.perf_counter()
            forward()
            fwd.append((time.perf_counter() - t0) * 1e3)
    forward().sum().backward()
    both = []
    for _ in range(runs):
        t0 = time.perf_counter()
        forward().sum().backward()
        both.append((time.perf_counter() - t0) * 1e3)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"forward_ms": statistics.median(fwd), "forward_backward_ms": statistics.median(both),
                      "peak_rss_growth_mib": (rss1 - rss0) / 1024, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
