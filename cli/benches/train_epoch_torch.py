#!/usr/bin/env python3
"""One training epoch of a CIFAR network of the paper on Fashion-MNIST in PyTorch (CPU, f32), for
the side-by-side table printed by `cargo bench -p lrnn-core --bench train_epoch`. The same data as
`lrnn train --data fashion-mnist --max-train N --max-val V --no-augment` (the first N training
images, padded to 32x32 with zeros, scaled to [0, 1], the mean training image subtracted; the
first V images of the validation split, which is the last 10,000 training images), the same
network (cifar_step_torch.py, one input channel), the same loss, optimiser (RMSprop lr 1e-3,
alpha 0.9, eps 1e-8) and batch size, then the validation error in inference mode.

Usage: train_epoch_torch.py NAME IDX_DIR N V BATCH THREADS -> one JSON line.
"""
import gzip
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cifar_step_torch import network  # noqa: E402


def read(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    name, idx, n, v, batch, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t_start = time.perf_counter()
    images = read(os.path.join(idx, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    labels = read(os.path.join(idx, "train-labels-idx1-ubyte.gz"), 8).astype(np.int64)
    padded = np.zeros((len(images), 1, 32, 32), dtype=np.float32)
    padded[:, 0, 2:30, 2:30] = images / 255.0
    train_x, train_y = padded[:n], labels[:n]
    val_x, val_y = padded[50000:50000 + v], labels[50000:50000 + v]
    mean = train_x.mean(axis=0, keepdims=True)
    train_x, val_x = torch.from_numpy(train_x - mean), torch.from_numpy(val_x - mean)
    train_y, val_y = torch.from_numpy(train_y), torch.from_numpy(val_y)
    net = network(name, cin=1)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-8)
    t0 = time.perf_counter()
    net.train()
    order = torch.randperm(n)
    loss_sum = 0.0
    for s in range(0, n, batch):
        idx_b = order[s:s + batch]
        opt.zero_grad()
        loss = F.cross_entropy(net(train_x[idx_b]), train_y[idx_b])
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(idx_b)
    net.eval()
    wrong = 0
    with torch.no_grad():
        for s in range(0, v, batch):
            wrong += (net(val_x[s:s + batch]).argmax(1) != val_y[s:s + batch]).sum().item()
    epoch_s = time.perf_counter() - t0
    print(json.dumps({"epoch_s": epoch_s, "total_s": time.perf_counter() - t_start, "parameters": params,
                      "train_loss": loss_sum / n, "val_error": wrong / max(v, 1),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
