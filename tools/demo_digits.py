#!/usr/bin/env python3
"""Demo: SGD, SAM, AUSAM and vSAM train a small CNN on scikit-learn's digits (CPU, ~1 min).

Real data shipped inside scikit-learn (1797 8x8 handwritten digits), 30% symmetric label
noise on the training split, same epochs and hyper-parameters for every optimizer.
Prints test accuracy, training images/s and the forward/backward sample-passes spent
relative to SGD (the honest cost measure). Usage::

    python tools/demo_digits.py [--epochs 12] [--noise 0.3] [--seed 0]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from tqdm import tqdm

from common.optim import AUSAM, SAM, VSAM


def load(noise: float, seed: int):
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    train, test = perm[:1300], perm[1300:]
    y_train = y[train].clone()
    flip = torch.rand(len(train), generator=g) < noise
    y_train[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
    return x[train], y_train, x[test], y[test]


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64 * 16, 10))


def train(name, data, epochs, seed):
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = cnn()
    hp = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = epochs * ((len(ytr) + 63) // 64)
    if name == 'SGD':
        opt = torch.optim.SGD(model.parameters(), **hp)
    elif name == 'SAM':
        opt = SAM(model.parameters(), 'SGD', rho=0.1, **hp)
    elif name == 'AUSAM':
        opt = AUSAM(model.parameters(), 'SGD', rho=0.1, num_samples=len(ytr), alpha=0.5,
                    ramp_epochs=max(1, epochs // 7), seed=seed, **hp)
    else:
        opt = VSAM(model.parameters(), 'SGD', rho=0.1, warmup_steps=steps // 10, seed=seed, **hp)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    passes = 0

    def closure(x, y):
        def run(index=None):
            nonlocal passes
            xi, yi = (x, y) if index is None else (x[index], y[index])
            passes += len(yi)
            return F.cross_entropy(model(xi), yi, reduction='none')
        return run

    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for epoch in tqdm(range(epochs), desc=f'{name:6s}', leave=False):
        if hasattr(opt, 'set_epoch'):
            opt.set_epoch(epoch)
        for ids in torch.randperm(len(ytr), generator=gen).split(64):
            x, y = xtr[ids], ytr[ids]
            if name == 'SGD':
                opt.zero_grad()
                closure(x, y)().mean().backward()
                opt.step()
            else:
                opt.step(closure(x, y), model=model, sample_ids=ids)
            sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = (model(xte).argmax(1) == yte).float().mean().item()
    return accuracy, epochs * len(ytr) / seconds, passes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument('--noise', type=float, default=0.3)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    data = load(args.noise, args.seed)
    rows = {name: train(name, data, args.epochs, args.seed) for name in ('SGD', 'SAM', 'AUSAM', 'VSAM')}
    sgd = rows['SGD']
    print(f'\ndigits, {args.noise:.0%} label noise, {args.epochs} epochs, seed {args.seed}')
    print('| optimizer | test accuracy | images/s | vs SGD | sample-passes vs SGD |')
    print('|---|---|---|---|---|')
    for name, (acc, ips, passes) in rows.items():
        print(f'| {name} | {acc:.3f} | {ips:.0f} | {ips / sgd[1]:.2f} | {passes / sgd[2]:.2f} |')


if __name__ == '__main__':
    main()
