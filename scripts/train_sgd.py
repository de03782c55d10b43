"""Example trial script that learns epoch by epoch: a small MLP trained by SGD on scikit-learn's
bundled digits, printing its validation loss after every epoch (``epoch=N val_loss=...``).

The per-epoch lines are what lets a pruner (``early_terminate``) stop a poor trial early.
"""

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    classes = np.unique(y)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden, args.hidden),
        solver="sgd",
        learning_rate_init=args.lr,
        momentum=args.momentum,
        alpha=args.alpha,
        batch_size=args.batch_size,
        random_state=0,
    )
    rng = np.random.default_rng(0)
    # One BLAS thread: trials run side by side, and the same parameters give the same curve.
    threadpool_limits(1)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(X_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(X_train[order], y_train[order], classes=classes)
        proba = model.predict_proba(X_val)
        val_loss = log_loss(y_val, proba, labels=classes)
        val_accuracy = float((proba.argmax(axis=1) == y_val).mean())
        print(f"epoch={epoch} val_loss={val_loss} val_accuracy={val_accuracy}")


if __name__ == "__main__":
    main()
