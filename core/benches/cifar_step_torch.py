#!/usr/bin/env python3
"""One training step of a CIFAR network of the paper in PyTorch (CPU, f32), for the side-by-side
table printed by `cargo bench -p lrnn-core --bench cifar_step`. The same network as lrnn-core's
(SPEC §5: pre-activation CNN modules, L-RNN modules with the vanilla + LayerNorm cell written as
per-step torch ops, fusions, global max pooling, dropout 0.5, linear head), the same loss
(cross-entropy) and the same optimiser (RMSprop, lr 1e-3, alpha 0.9, eps 1e-8).

Usage: cifar_step_torch.py NAME BATCH RUNS THREADS [DEVICE] -> one JSON line (median ms, peak RSS
growth; on CUDA the peak of allocated GPU memory). DEVICE is `cpu` (default) or `cuda` (f32, TF32
off, synchronised around each timed step; used by `cargo bench --bench gpu_forward` on an NVIDIA
machine). Only E-RNN-Max and Baseline-CNN-Max are written here.
"""
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cnn(nn.Module):
    def __init__(self, cin, w):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, w, 3, padding=1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(w), nn.Conv2d(w, w, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))


def scan_ln(xi, v, g, b, reverse):
    """xi [N, T, D] -> [N, T, D], vanilla + LayerNorm cell."""
    n, t_len, d = xi.shape
    h = xi.new_zeros(n, d)
    out = [None] * t_len
    for i in range(t_len):
        t = t_len - 1 - i if reverse else i
        a = xi[:, t] + h @ v.T if i else xi[:, t]
        h = F.relu(F.layer_norm(a, (d,), g, b, 1e-5))
        out[t] = h
    return torch.stack(out, dim=1)


class Pair(nn.Module):
    def __init__(self, cin, d, horizontal):
        super().__init__()
        self.h, self.d = horizontal, d
        self.u = nn.Linear(cin, 2 * d)
        self.v = nn.Parameter(torch.empty(2, d, d).uniform_(-d ** -0.5, d ** -0.5))
        self.g = nn.Parameter(torch.ones(2, d))
        self.b = nn.Parameter(torch.zeros(2, d))

    def forward(self, x):
        xs = x.permute(0, 2, 3, 1) if self.h else x.permute(0, 3, 2, 1)
        bsz, s, t, c = xs.shape
        xi = self.u(xs.reshape(bsz * s, t, c))
        d = self.d
        h = sum(scan_ln(xi[..., k * d:(k + 1) * d], self.v[k], self.g[k], self.b[k], k == 1) for k in range(2))
        h = h.reshape(bsz, s, t, d)
        return h.permute(0, 3, 1, 2) if self.h else h.permute(0, 3, 2, 1)


class Lrnn(nn.Module):
    def __init__(self, cin, d):
        super().__init__()
        self.hp, self.vp = Pair(cin, d, True), Pair(d, d, False)

    def forward(self, x):
        return self.vp(self.hp(x))


class Unit(nn.Module):
    def __init__(self, m, concat):
        super().__init__()
        self.m, self.concat = m, concat

    def forward(self, x):
        y = self.m(x)
        return torch.cat([x, y], 1) if self.concat else y


def network(name, cin=3):
    if name.startswith("E-RNN"):
        stages = [[Unit(Cnn(64, 64), True)],
                  [Unit(Lrnn(128, 128), False), Unit(Cnn(128, 128), True)],
                  [Unit(Lrnn(256, 128), False), Unit(Cnn(128, 128), True)]]
        out = 256
    elif name.startswith("Baseline"):
        stages = [[Unit(Cnn(64, 64), True)], [Unit(Cnn(128, 128), True)], [Unit(Cnn(256, 256), True)]]
        out = 512
    else:
        raise SystemExit(f"{name}: not written in this script")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(cin, 64, 3, padding=1)
            self.stages = nn.ModuleList(nn.Sequential(*s) for s in stages)
            self.head = nn.Linear(out, 10)

        def forward(self, x):
            h = self.stem(x)
            for i, s in enumerate(self.stages):
                h = s(F.max_pool2d(h, 2) if i else h)
            return self.head(F.dropout(torch.amax(h, dim=(2, 3)), 0.5, self.training))

    return Net()


def main():
    name, batch, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    device = sys.argv[5] if len(sys.argv) > 5 else "cpu"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    net = network(name).to(device)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-8)
    x = torch.randn(batch, 3, 32, 32).to(device)
    y = torch.randint(0, 10, (batch,)).to(device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    step()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"step_ms": statistics.median(times), "parameters": params,
           "peak_rss_growth_mib": (rss1 - rss0) / 1024, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "device": "cpu"}
    if device == "cuda":
        out["device"] = torch.cuda.get_device_name()
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
