"""onderwijsscore.scoring.logistic against Spark ML's LogisticRegression on the expanded unit-weight rows."""

from itertools import product

import numpy as np
import pytest
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession

from onderwijsscore.scoring.logistic import fit_multinomial, probabilities

N_LABELS = 8
GROUP_SIZE = 9


def _parents(
    seed: int, absent: tuple[int, ...] = (), n_distinct: int = 150, n: int = 4000
) -> tuple[np.ndarray, np.ndarray]:
    """Features like the education model's: income percentile 1-100 (0 when missing) with a missing
    flag, age 25-70, a 0/1 sex flag and two one-hot groups of 9 columns (some never set); few distinct
    vectors, so the count table is much smaller than the rows. Labels 0-7 (minus `absent`)."""
    rng = np.random.default_rng(seed)
    missing = rng.random(n_distinct) < 0.15
    income = np.where(missing, 0, rng.integers(1, 101, n_distinct))
    age = rng.integers(25, 71, n_distinct)
    sex = rng.integers(0, 2, n_distinct)
    group1 = np.eye(GROUP_SIZE)[rng.choice([0, 1, 2, 4, 8], n_distinct)]
    group2 = np.eye(GROUP_SIZE)[rng.choice([0, 3, 5, 6], n_distinct, p=[0.4, 0.3, 0.2, 0.1])]
    distinct = np.column_stack([income, missing, age, sex, group1, group2]).astype(float)
    x = distinct[rng.integers(0, n_distinct, n)]
    weights = rng.normal(0, 0.5, (x.shape[1], N_LABELS)) * np.r_[0.03, 1, 0.05, np.ones(x.shape[1] - 3)][:, None]
    margins = x @ weights
    p = np.exp(margins - margins.max(axis=1, keepdims=True))
    p[:, list(absent)] = 0.0
    labels = np.array([rng.choice(N_LABELS, p=row / row.sum()) for row in p])
    return x, labels


def _count_table(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distinct, row = np.unique(x, axis=0, return_inverse=True)
    counts = np.zeros((len(distinct), N_LABELS))
    np.add.at(counts, (row.ravel(), labels), 1.0)
    return distinct, counts


def _grid(x: np.ndarray) -> np.ndarray:
    """The training vectors and unseen ones, including the one-hot columns that are never set."""
    unseen = [
        [income, float(income == 0), age, sex, *np.eye(GROUP_SIZE)[g1], *np.eye(GROUP_SIZE)[g2]]
        for income, age, sex, g1, g2 in product((0, 1, 37, 100), (25, 48, 70), (0, 1), range(GROUP_SIZE), (0, 3, 7))
    ]
    return np.vstack([np.unique(x, axis=0), np.array(unseen, dtype=float)])


def _spark_fit(
    spark: SparkSession, x: np.ndarray, labels: np.ndarray, max_iter: int, reg_param: float, tolerance: float
) -> LogisticRegressionModel:
    rows = [(Vectors.dense(v), float(label)) for v, label in zip(x.tolist(), labels.tolist(), strict=True)]
    estimator = LogisticRegression(
        family="multinomial", maxIter=max_iter, regParam=reg_param, elasticNetParam=0.0, tol=tolerance
    )
    return estimator.fit(spark.createDataFrame(rows, ["features", "label"]).repartition(1))


def _spark_probabilities(spark: SparkSession, model: LogisticRegressionModel, grid: np.ndarray) -> np.ndarray:
    frame = spark.createDataFrame([(i, Vectors.dense(v)) for i, v in enumerate(grid.tolist())], ["id", "features"])
    rows = model.transform(frame).select("id", "probability").orderBy("id").collect()
    return np.array([row["probability"].toArray() for row in rows])


@pytest.mark.parametrize(
    ("seed", "absent", "max_iter", "reg_param", "tolerance", "stops_at_max_iter"),
    [
        (1, (), 5, 0.001, 1e-5, True),  # every label; stopped by maxIter
        (2, (3,), 10, 0.001, 1e-5, True),  # a class inside 0..7 that never occurs (histogram 0)
        (2, (7,), 100, 0.001, 1e-4, False),  # the top label never occurs (7 classes); converges first
    ],
)
def test_same_model_as_spark(spark, seed, absent, max_iter, reg_param, tolerance, stops_at_max_iter):
    x, labels = _parents(seed, absent)
    assert set(labels) == set(range(N_LABELS)) - set(absent)
    features, counts = _count_table(x, labels)
    assert len(features) < len(x) / 10

    model = _spark_fit(spark, x, labels, max_iter, reg_param, tolerance)
    fit = fit_multinomial(features, counts, max_iter, reg_param, tolerance)

    assert fit.iterations == model.summary.totalIterations
    assert (fit.iterations == max_iter) == stops_at_max_iter
    assert fit.converged != stops_at_max_iter
    if stops_at_max_iter:
        assert fit.reason == "max iterations"
    else:
        assert fit.reason in ("function values converged", "gradient converged")
    np.testing.assert_allclose(fit.objective_history, model.summary.objectiveHistory, rtol=0, atol=1e-12)
    assert fit.coefficients.shape == (model.numClasses, x.shape[1])
    np.testing.assert_allclose(fit.coefficients, model.coefficientMatrix.toArray(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.intercepts, model.interceptVector.toArray(), rtol=0, atol=1e-8)
    grid = _grid(x)
    np.testing.assert_allclose(probabilities(fit, grid), _spark_probabilities(spark, model, grid), rtol=0, atol=1e-9)


def test_single_class_as_spark(spark):
    """Spark does not train when one label occurs: zero coefficients, +inf intercept for it."""
    x, _ = _parents(3, n=200)
    labels = np.full(len(x), 2)
    features, counts = _count_table(x, labels)

    model = _spark_fit(spark, x, labels, 30, 0.001, 1e-5)
    fit = fit_multinomial(features, counts, 30, 0.001, 1e-5)

    assert fit.iterations == model.summary.totalIterations == 0
    assert fit.objective_history == tuple(model.summary.objectiveHistory)
    np.testing.assert_array_equal(fit.coefficients, model.coefficientMatrix.toArray())
    np.testing.assert_array_equal(fit.intercepts, model.interceptVector.toArray())
    grid = _grid(x)
    np.testing.assert_array_equal(probabilities(fit, grid), _spark_probabilities(spark, model, grid))


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        (np.zeros((2, 3)), "no instance"),
        (np.array([[1.0, -1.0, 0.0], [2.0, 0.0, 0.0]]), "non-negative"),
        (np.array([[0.5, 1.0, 0.0], [2.0, 0.0, 0.0]]), "whole numbers"),
        (np.ones((3, 3)), "same rows"),
    ],
)
def test_rejects_what_spark_rejects(counts, message):
    with pytest.raises(ValueError, match=message):
        fit_multinomial(np.array([[1.0, 0.0], [2.0, 1.0]]), counts, 10, 0.001, 1e-5)
