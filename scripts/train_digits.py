"""Example trial script: an SVM on scikit-learn's bundled digits, scored by cross-validation.

Any script can be swept the same way: take the parameters as ``--name=value`` arguments and
print the metric as ``name=value``. Nothing here knows about Sweeps.
"""

import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=1e-3)
    parser.add_argument("--kernel", choices=["rbf", "poly", "sigmoid"], default="rbf")
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument("--coef0", type=float, default=0.0)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities are 0..16
    model = SVC(C=args.C, gamma=args.gamma, kernel=args.kernel, degree=args.degree, coef0=args.coef0)
    scores = cross_val_score(model, X, y, cv=3)
    print(f"val_accuracy={scores.mean()}")


if __name__ == "__main__":
    main()
