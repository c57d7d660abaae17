"""Minimal training of the shared-weight ResNet on scikit-learn's digits (placeholder CLI).

Full CLI (data sets, depth adaptation, checkpoints) lands with the training issue.
"""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import resflow as rf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--depth", type=int, default=15)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth-adapt", action="store_true", help="(accepted; implemented with the training issue)")
    args = ap.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(X))
    X, y = X[perm], y[perm]
    n_train = int(0.8 * len(X))
    mu, sd = X[:n_train].mean(0), X[:n_train].std(0) + 1e-6
    X = ((X - mu) / sd).astype(np.float32)
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]

    key = jax.random.key(args.seed)
    kt, kv = jax.random.split(key)
    params = {"trunk": rf.init_trunk(kt, 64), "V": jax.random.normal(kv, (10, 64)) * 0.1, "c": jnp.zeros(10)}
    opt = optax.adam(args.lr)
    state = opt.init(params)

    def logits(p, x):
        return rf.forward(p["trunk"], x, depth=args.depth) @ p["V"].T + p["c"]

    @jax.jit
    def train_step(p, s, x, yb):
        loss, g = jax.value_and_grad(
            lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, x), yb).mean()
        )(p)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    for _epoch in range(args.epochs):
        order = rng.permutation(n_train)
        for i in range(0, n_train, 64):
            idx = order[i : i + 64]
            params, state, loss = train_step(params, state, Xtr[idx], ytr[idx])
    acc = float(jnp.mean(jnp.argmax(logits(params, Xte), -1) == yte))
    print(f"digits: depth {args.depth}, test accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
