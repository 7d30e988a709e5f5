"""Reference models on exactly costbench's prepared splits: scikit-learn's LogisticRegression (C chosen
by cross-validation on train) and LightGBM (early stopping on validation). They say what a well-tuned
classic model reaches on the same rows, so a gap in the neural families' AUC is the recipe's, not the
data's. Both libraries are optional (``pip install -e ".[baselines]"``); nothing here touches the test
labels except the final score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from costbench.data import PreparedData, Schema, Split

if TYPE_CHECKING:
    import scipy.sparse as sp


def design_matrix(split: Split, schema: Schema) -> sp.csr_matrix:
    """The prepared numeric columns, one-hot categoricals and the shares of viewed item categories: the
    very features ``logreg xs`` sees, as one sparse matrix."""
    import scipy.sparse as sp

    n = len(split)
    blocks = [sp.csr_matrix(split.numeric.numpy().astype(np.float64))]
    categorical = split.categorical.numpy()
    for j, card in enumerate(schema.cardinalities):
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), categorical[:, j])), shape=(n, card)))
    if schema.sequence_length > 0:
        cats = split.item_categories.numpy()
        rows = np.repeat(np.arange(n), cats.shape[1])
        flat = cats.ravel()
        viewed = np.maximum((cats != 0).sum(1), 1).astype(np.float64)
        keep = flat != 0
        blocks.append(sp.csr_matrix((1.0 / viewed[rows[keep]], (rows[keep], flat[keep])),
                                    shape=(n, schema.n_item_categories)))
    return sp.hstack(blocks, format="csr")


def logistic_regression(data: PreparedData, folds: int = 3) -> tuple[np.ndarray, dict[str, Any]]:
    """Test probabilities of an L2 logistic regression whose C is picked by ``folds``-fold CV AUC on train."""
    from sklearn.linear_model import LogisticRegressionCV

    x_train = design_matrix(data.train, data.schema)
    model = LogisticRegressionCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=folds, scoring="roc_auc", max_iter=2000,
                                 solver="lbfgs")
    model.fit(x_train, data.train.label.numpy())
    val = model.predict_proba(design_matrix(data.val, data.schema))[:, 1]
    test = model.predict_proba(design_matrix(data.test, data.schema))[:, 1]
    return test, {"C": float(model.C_[0]), "val_proba": val}


def lightgbm(data: PreparedData, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Test probabilities of LightGBM with its defaults (lr 0.05), stopped early on validation log loss."""
    import lightgbm as lgb

    def frame(split: Split) -> np.ndarray:
        parts = [split.numeric.numpy(), split.categorical.numpy().astype(np.float32)]
        if data.schema.sequence_length > 0:
            cats = split.item_categories.numpy()
            counts = np.stack([(cats == c).sum(1) for c in range(1, data.schema.n_item_categories)], 1)
            parts.append(counts.astype(np.float32))
        return np.concatenate(parts, axis=1)

    n_num = data.schema.n_numeric
    categorical = list(range(n_num, n_num + len(data.schema.cardinalities)))
    model = lgb.LGBMClassifier(n_estimators=5000, learning_rate=0.05, random_state=seed, verbose=-1, n_jobs=2)
    model.fit(frame(data.train), data.train.label.numpy(), eval_set=[(frame(data.val), data.val.label.numpy())],
              categorical_feature=categorical, callbacks=[lgb.early_stopping(100, verbose=False)])
    val = model.predict_proba(frame(data.val))[:, 1]
    test = model.predict_proba(frame(data.test))[:, 1]
    return test, {"best_iteration": int(model.best_iteration_ or 0), "val_proba": val}
