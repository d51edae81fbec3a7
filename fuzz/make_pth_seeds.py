"""Writes the seeds of the `pth_trunk` fuzz target: a tiny VGG-16-like state dict saved by
torch in the zip format (torch.save's default) and in the legacy format, plus one with the
first layer at its real shape. `/usr/bin/python3 fuzz/make_pth_seeds.py` (Debian's python3-torch)."""
import os
import torch

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pth_trunk")
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(0)
small = {
    "features.0.weight": torch.randn(2, 3, 3, 3, generator=g),
    "features.0.bias": torch.randn(2, generator=g),
    "classifier.0.weight": torch.zeros(1, 2),
}
real_first = {
    "features.0.weight": torch.randn(64, 3, 3, 3, generator=g),
    "features.0.bias": torch.randn(64, generator=g).half(),
    "features.2.weight": torch.randn(64, 64, 3, 3, generator=g)[:, :, :1, :1].clone(),
}
torch.save(small, os.path.join(out, "seed-zip.pth"))
torch.save(small, os.path.join(out, "seed-legacy.pth"), _use_new_zipfile_serialization=False)
torch.save(real_first, os.path.join(out, "seed-first-layer.pth"))
print("wrote", sorted(os.listdir(out)))
