#!/usr/bin/env python3
"""The scans of the benchmark in PyTorch (CPU, f32), for the side-by-side table printed by
`cargo bench -p lrnn-core --bench lrnn_module`. Same computations:
- `module`: an L-RNN module, sum merge, each direction owning U, b, V (vanilla or GRU cell);
- `pair`: a horizontal pair inserted into a convolution, reading its output as the shared
  projection, vanilla cell, mean merge (the FCN heads).
Per step one [N, D] x [D, G*D] product for all rows of a direction.

Usage: lrnn_module_torch.py B C H W D RUNS [THREADS [CELL [MODE [DEVICE]]]]  -> one JSON line
with medians in ms; with LRNN_TORCH_MEMORY=1 instead the growth of the peak resident memory over
one forward+backward in a fresh process (MiB). DEVICE is `cpu` (default) or `cuda` (timings then
wait for the GPU: torch.cuda.synchronize).
"""
import json
import os
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


def scan_gru(xi, v, reverse):
    """xi [N, T, 3D] (z, r, h blocks), v [3D, D]: the GRU of the paper (ReLU candidate, reset
    gate before W_h)."""
    n, t_len, gd = xi.shape
    d = gd // 3
    s = xi.new_zeros(n, d)
    out = [None] * t_len
    for i in range(t_len):
        t = t_len - 1 - i if reverse else i
        x = xi[:, t]
        zr = torch.sigmoid(x[:, :2 * d] + s @ v[:2 * d].T)
        z, r = zr[:, :d], zr[:, d:]
        c = torch.relu(x[:, 2 * d:] + (r * s) @ v[2 * d:].T)
        s = (1 - z) * c + z * s
        out[t] = s
    return torch.stack(out, dim=1)


def pair(x, u, b, v, horizontal, cell="vanilla"):
    xs = x.permute(0, 2, 3, 1) if horizontal else x.permute(0, 3, 2, 1)
    bsz, s, t, c = xs.shape
    xi = (xs.reshape(bsz * s, t, c) @ u.T + b)  # both directions at once: [N, T, 2GD]
    gd = v[0].shape[0]
    d = v[0].shape[1]
    run = scan_gru if cell == "gru" else scan
    h = run(xi[..., :gd], v[0], False) + run(xi[..., gd:], v[1], True)
    h = h.reshape(bsz, s, t, d)
    return h.permute(0, 3, 1, 2) if horizontal else h.permute(0, 3, 2, 1)


def shared_pair(xi, v):
    """A horizontal pair on a shared projection xi [B, D, H, W], mean merge."""
    xs = xi.permute(0, 2, 3, 1)
    bsz, s, t, d = xs.shape
    seq = xs.reshape(bsz * s, t, d)
    h = ((scan(seq, v[0], False) + scan(seq, v[1], True)) / 2).reshape(bsz, s, t, d)
    return h.permute(0, 3, 1, 2)


def vm_kib(field):
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its high-water mark)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return float("nan")


def main():
    bsz, c, hgt, wid, d, runs = map(int, sys.argv[1:7])
    torch.set_num_threads(int(sys.argv[7]) if len(sys.argv) > 7 else torch.get_num_threads())
    cell = sys.argv[8] if len(sys.argv) > 8 else "vanilla"
    mode = sys.argv[9] if len(sys.argv) > 9 else "module"
    dev = torch.device(sys.argv[10] if len(sys.argv) > 10 else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    gates = 3 if cell == "gru" else 1
    g = torch.Generator().manual_seed(0)

    def leaf(t):
        return t.to(dev).requires_grad_(True)

    params = []
    if mode == "pair":
        x = leaf(torch.randn(bsz, d, hgt, wid, generator=g))
        v = [leaf((torch.rand(d, d, generator=g) - 0.5) / d ** 0.5) for _ in range(2)]

        def forward():
            return shared_pair(x, v)
    else:
        x = leaf(torch.randn(bsz, c, hgt, wid, generator=g))
        for cin in (c, d):
            u = leaf((torch.rand(2 * gates * d, cin, generator=g) - 0.5) / cin ** 0.5)
            b = leaf(torch.zeros(2 * gates * d))
            v = [leaf((torch.rand(gates * d, d, generator=g) - 0.5) / d ** 0.5) for _ in range(2)]
            params.append((u, b, v))

        def forward():
            (u1, b1, v1), (u2, b2, v2) = params
            return pair(pair(x, u1, b1, v1, True, cell), u2, b2, v2, False, cell)

    if os.environ.get("LRNN_TORCH_MEMORY") == "1":
        # The growth of the peak resident memory over one forward+backward from here: the
        # high-water mark is reset to the resident memory now (/proc/self/clear_refs), then read
        # after (VmHWM; ru_maxrss would include the parent's memory at the fork).
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        now = vm_kib("VmRSS")
        forward().sum().backward()
        print(json.dumps({"peak_growth_mib": (vm_kib("VmHWM") - now) / 1024}))
        return
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        forward()
        fwd = []
        for _ in range(runs):
            sync()
            t0 = time.perf_counter()
            forward()
            sync()
            fwd.append((time.perf_counter() - t0) * 1e3)
    forward().sum().backward()
    both = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        forward().sum().backward()
        sync()
        both.append((time.perf_counter() - t0) * 1e3)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"forward_ms": statistics.median(fwd), "forward_backward_ms": statistics.median(both),
                      "peak_rss_growth_mib": (rss1 - rss0) / 1024, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
