#!/usr/bin/env python3
"""VGG-16 FCN-8s / FCN-8s-LRNN (n = 1024) forward in PyTorch (CPU, f32), for the side-by-side table
of `cargo bench -p lrnn-core --bench fcn_forward`. The same network as lrnn-core's
(core/src/models/fcn.rs, SPEC §6): 13 VGG-16 convolutions with ReLU and five 2x2 max-pools; heads
fc1 7x7 (pad 3) / fc2 1x1 / fc3 1x1 on pool5, fc4/fc5/fc6 on pool4, fc7/fc8/fc9 on pool3; in the
-LRNN variant a horizontal pair on fc1, fc4, fc7 and a vertical pair on fc2, fc5, fc8, each pair
sharing the convolution as U (h_t = ReLU(conv_t + V h_{t-1}), both directions, mean); bilinear
upsampling (align_corners=False): x2 + pool4 scores, x2 + pool3 scores, x8.

Usage: fcn_forward_torch.py NAME RUNS THREADS [DEVICE [step]] -> one JSON line (median ms,
parameters). DEVICE is `cpu` (default) or `cuda` (f32, TF32 off, synchronised around each timed
call; used by `cargo bench --bench gpu_forward` on an NVIDIA machine). With `step`, one training
step instead of a forward pass, as lrnn-core's trainer takes it: the forward pass, the mean
per-pixel softmax cross-entropy over 21 classes (random labels), the backward pass, RMSprop
(lr 1e-4, alpha 0.9, eps 1e-8) on every weight; `step_ms` in the JSON.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VGG = [(3, 64), (64, 64), "P", (64, 128), (128, 128), "P", (128, 256), (256, 256), (256, 256), "P",
       (256, 512), (512, 512), (512, 512), "P", (512, 512), (512, 512), (512, 512), "P"]


def scan(xi, v, reverse):
    """xi [N, T, D] -> [N, T, D]: h_t = ReLU(xi_t + h_{t-1} V^T)."""
    n, t_len, d = xi.shape
    h = torch.relu(xi[:, t_len - 1 if reverse else 0])
    out = [None] * t_len
    out[t_len - 1 if reverse else 0] = h
    for i in range(1, t_len):
        t = t_len - 1 - i if reverse else i
        h = torch.relu(xi[:, t] + h @ v.T)
        out[t] = h
    return torch.stack(out, dim=1)


class Head(nn.Module):
    """A ReLU convolution with (optionally) an inserted pair along `axis`."""

    def __init__(self, cin, cout, k, lrnn, horizontal):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)
        self.lrnn, self.h = lrnn, horizontal
        if lrnn:
            self.v = nn.Parameter(torch.zeros(2, cout, cout))

    def forward(self, x):
        xi = self.conv(x)
        if not self.lrnn:
            return torch.relu(xi)
        xs = xi.permute(0, 2, 3, 1) if self.h else xi.permute(0, 3, 2, 1)
        b, s, t, d = xs.shape
        seq = xs.reshape(b * s, t, d)
        h = (scan(seq, self.v[0], False) + scan(seq, self.v[1], True)) / 2
        h = h.reshape(b, s, t, d)
        return h.permute(0, 3, 1, 2) if self.h else h.permute(0, 3, 2, 1)


class Fcn(nn.Module):
    def __init__(self, lrnn, n=1024, k=21):
        super().__init__()
        self.trunk = nn.ModuleList(nn.Conv2d(a[0], a[1], 3, padding=1) if a != "P" else nn.Identity() for a in VGG)
        self.pools = [i for i, a in enumerate(VGG) if a == "P"]

        def branch(cin, w, ksz):
            return nn.ModuleList([Head(cin, w, ksz, lrnn, True), Head(w, w, 1, lrnn, False),
                                  nn.Conv2d(w, k, 1)])

        self.b5, self.b4, self.b3 = branch(512, n, 7), branch(512, 1024, 1), branch(256, 1024, 1)

    def forward(self, x):
        feats = []
        for i, layer in enumerate(self.trunk):
            if i in self.pools:
                x = F.max_pool2d(x, 2)
                feats.append(x)
            else:
                x = torch.relu(layer(x))
        run = lambda b, t: b[2](b[1](b[0](t)))  # noqa: E731
        s = run(self.b5, feats[4])
        s = F.interpolate(s, size=feats[3].shape[2:], mode="bilinear", align_corners=False) + run(self.b4, feats[3])
        s = F.interpolate(s, size=feats[2].shape[2:], mode="bilinear", align_corners=False) + run(self.b3, feats[2])
        return F.interpolate(s, size=(384, 384), mode="bilinear", align_corners=False)


def main():
    name, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    net = Fcn(lrnn=name.endswith("-LRNN")).eval().to(device)
    params = sum(p.numel() for p in net.parameters())
    x = (torch.randn(1, 3, 384, 384) * 50).to(device)
    if len(sys.argv) > 5 and sys.argv[5] == "step":
        net.train()
        with torch.no_grad():
            for p in net.parameters():  # random recurrences, as the Rust benchmark's
                if p.dim() == 3:
                    p.normal_(0.0, 0.5 / p.shape[-1] ** 0.5)
        opt = torch.optim.RMSprop(net.parameters(), lr=1e-4, alpha=0.9, eps=1e-8)
        y = torch.randint(0, 21, (1, 384, 384)).to(device)

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
        out = {"step_ms": statistics.median(times), "parameters": params, "torch": torch.__version__,
               "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
        if device == "cuda":
            out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        print(json.dumps(out))
        return
    with torch.no_grad():
        net(x)
        sync()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            net(x)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"forward_ms": statistics.median(times), "parameters": params, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}))


if __name__ == "__main__":
    main()
