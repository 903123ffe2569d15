"""PyTorch peer of benches/detect.rs: the same U-Net (widths 16..256, four poolings, two 3x3
conv + batch norm + ReLU per level, transposed-conv upsampling, skip connections, 1x1 head),
one Adam training step at batch 16 and inference at batch 32 on 64x64x5 inputs, CPU.

Run: VENV/bin/python benches/peers/unet_peer.py [--threads N] [--widths 8,16,32,64] [--json F]
Prints the median time per training step and inference patches per second; `--json` also
writes them (ms) for benches/unet_backends.sh, which runs this beside `cargo bench --bench
detect` and writes the table of every backend.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class Unet(nn.Module):
    """Parameter names match the Rust model's safetensors keys (down.0.conv1.weight, ...)."""

    def __init__(self, cin=5, cout=2, widths=(16, 32, 64, 128, 256)):
        super().__init__()
        w = list(widths)
        depth = len(w) - 1
        self.down = nn.ModuleList(
            [ConvBlock(cin if i == 0 else w[i - 1], w[i]) for i in range(depth + 1)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(depth))]
        )
        self.dec = nn.ModuleList([ConvBlock(2 * w[i], w[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(w[0], cout, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.up):
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], 1))
        return self.head(x)


def targets(n):
    t = torch.zeros(n, 2, 64, 64)
    t[:, 0] = 1.0
    t[:, 0, 18:23, 30:35] = 0.0
    t[:, 1, 18:23, 30:35] = 1.0
    return t


def median_time(fn, reps):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--widths", default="16,32,64,128,256")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Unet(widths=widths)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    nb = a.batch
    x = torch.rand(nb, 5, 64, 64) * 3
    t = targets(nb)

    def step():
        opt.zero_grad()
        logp = F.log_softmax(model(x), dim=1)
        loss = -(logp * t).sum() / (nb * 64 * 64)
        loss.backward()
        opt.step()

    model.train()
    s = median_time(step, a.reps)
    print(f"torch {torch.__version__} threads {torch.get_num_threads()} widths {widths}")
    print(f"train_step_batch{nb}: {s * 1e3:.1f} ms ({nb / s:.1f} patches/s)")
    train_ms = s * 1e3
    model.eval()
    xi = torch.rand(32, 5, 64, 64) * 3

    def infer():
        with torch.no_grad():
            model(xi).contiguous()

    s = median_time(infer, a.reps)
    print(f"inference_batch32: {s * 1e3:.1f} ms ({32 / s:.1f} patches/s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "widths": widths,
                    f"train_step_batch{nb}_ms": train_ms,
                    "inference_batch32_ms": s * 1e3,
                },
                f,
            )


if __name__ == "__main__":
    main()
