"""Linear-probe accuracy: a logistic regression (scikit-learn) on frozen, standardised
embeddings."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe_accuracy(train_x, train_y, test_x, test_y, c: float = 1.0, max_iter: int = 2000) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    clf.fit(np.asarray(train_x, np.float64), np.asarray(train_y))
    return float((clf.predict(np.asarray(test_x, np.float64)) == np.asarray(test_y)).mean())
