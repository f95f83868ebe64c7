"""Can a fresh classifier tell a set of faces from real ones? (a classifier two-sample test)

The Fréchet and patch distances compare statistics a person does not look at, and every one of
them can prefer a face that looks worse (a fine-tune that adds grain brings the statistics of
fine detail closer to real faces' sharp lines). A small CNN trained from scratch to tell the
faces from real ones, and scored on faces neither side of its training saw, looks for whatever
gives the faces away: grain, blur, broken eyes, a wrong palette. Its held-out ROC AUC is the
figure: 0.5 when it cannot tell them apart, 1.0 when it always can. It is seeded and trained
the same way for every set, so sets measured in one run compare; the absolute figure depends
on the classifier's size and training length and means nothing alone.

Real faces: the evaluation's held-out sets (``training.doodle.evaluate``): it trains on the
reference faces and is scored on the second set, so the generated faces are split the same way.
"""

from __future__ import annotations

import numpy as np


def auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    diff = scores_pos[:, None] - scores_neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def detectability(real_train: np.ndarray, fake_train: np.ndarray, real_test: np.ndarray, fake_test: np.ndarray,
                  *, steps: int = 400, batch: int = 64, seed: int = 0) -> float:
    """Held-out ROC AUC of a small CNN trained to tell ``fake_*`` from ``real_*`` (uint8
    (N, S, S, 3) faces). Random horizontal flips on both sides, so a mirrored pose is no
    giveaway."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def prepared(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    real, fake = prepared(real_train), prepared(fake_train)
    half = batch // 2
    for _ in range(steps):
        x = torch.cat([real[rng.integers(len(real), size=half)], fake[rng.integers(len(fake), size=half)]])
        flip = torch.from_numpy(rng.random(batch) < 0.5)
        x[flip] = x[flip].flip(-1)
        y = torch.cat([torch.zeros(half), torch.ones(half)])
        loss = F.binary_cross_entropy_with_logits(net(x).squeeze(1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        s_real = torch.cat([net(b).squeeze(1) for b in prepared(real_test).split(200)]).numpy()
        s_fake = torch.cat([net(b).squeeze(1) for b in prepared(fake_test).split(200)]).numpy()
    return auc(s_fake, s_real)


def told_apart(real_train: np.ndarray, fake_train: np.ndarray, real_test: np.ndarray, fake_test: np.ndarray,
               seeds: int) -> float | str:
    """The "told apart" column: the mean ``detectability`` of classifiers seeded 0 .. seeds-1
    ("-" when ``seeds`` is 0: not measured)."""
    if seeds <= 0:
        return "-"
    aucs = [detectability(real_train, fake_train, real_test, fake_test, seed=s) for s in range(seeds)]
    return float(sum(aucs) / len(aucs))
