#!/usr/bin/env python3
"""The paper's codec in PyTorch, timed exactly as `safe-pit-cm bench codec` times ours.

    python benches/pytorch_codec.py [--frames 101] [--size 128] [--runs 3] [--threads 2]

Encoder and decoder are each three 3x3 convolution blocks (1 -> 16 -> 16 -> 16 channels,
circular padding, batch normalisation with batch statistics, ReLU, a skip where the channel
counts match) and a 1x1 projection to one channel: `F = V + g(V)`, `V_hat = F + h(F)`. One
timed step is the forward pass over the whole video as one batch, the loss
`mean((V_hat - V)^2) + mean((F - V)^2)` and its backward pass to every weight. Prints JSON
with the median of `--runs` steps after one warm-up step on 4 frames, like ours.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular")
        self.norm = nn.BatchNorm2d(c_out)
        self.skip = c_in == c_out

    def forward(self, x):
        y = torch.relu(self.norm(self.conv(x)))
        return x + y if self.skip else y


class ResidualField(nn.Module):
    def __init__(self, channels=16, blocks=3):
        super().__init__()
        self.blocks = nn.Sequential(*[Block(1 if i == 0 else channels, channels) for i in range(blocks)])
        self.proj = nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        return x + self.proj(self.blocks(x))


def step(frames, size, seed):
    torch.manual_seed(seed)
    enc, dec = ResidualField(), ResidualField()
    i = torch.arange(frames * size * size, dtype=torch.float32)
    v = (torch.frac(i * 0.618034) - 0.5).reshape(frames, 1, size, size)
    t0 = time.perf_counter()
    f = enc(v)
    vhat = dec(f)
    loss = ((vhat - v) ** 2).mean() + ((f - v) ** 2).mean()
    loss.backward()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=101)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    step(min(a.frames, 4), a.size, 0)
    runs = [step(a.frames, a.size, r) for r in range(max(a.runs, 1))]
    print(json.dumps({
        "what": "PyTorch: encoder + decoder forward and backward (paper codec)",
        "torch": torch.__version__,
        "frames": a.frames,
        "size": a.size,
        "threads": torch.get_num_threads(),
        "median_s": statistics.median(runs),
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
