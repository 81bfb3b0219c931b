"""Spark ML's multinomial logistic regression, fitted on the driver from a count table.

Reproduces `pyspark.ml.classification.LogisticRegression(family="multinomial", maxIter, regParam,
elasticNetParam=0.0, tol)` of Spark 4.1.1 with its other defaults (fitIntercept, standardization, no
bounds, no weights) for training rows of weight 1, given instead as one row per distinct feature
vector with a count per label. Everything that decides the fitted model is Spark's: the class count
and label histogram, the feature means and sample standard deviations, the objective in the
standardized and centered space, the starting point, and Breeze 2.1.0's L-BFGS (m = 10) with its
strong-Wolfe line search, failure handling and convergence checks. The fit therefore takes the same
path and the same number of iterations and gives the same model up to floating-point summation order,
without a Spark job per function evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

_MEMORY = 10  # L-BFGS history length: Spark builds Breeze's LBFGS(maxIter, 10, tol)
_FVAL_MEMORY = 20  # FirstOrderMinimizer.defaultConvergenceCheck: function values remembered
_LINE_SEARCH_ITER = 10  # StrongWolfeLineSearch(maxZoomIter = 10, maxLineSearchIter = 10)
_C1, _C2 = 1e-4, 0.9  # strong Wolfe constants
_MIN_STEP = 1e-10  # LBFGS: alpha * norm(grad) below this is a StepSizeUnderflow
_MIN_GRADIENT_NORM = 1e-8  # gradientConverged's absolute floor

Objective = Callable[[np.ndarray], tuple[np.float64, np.ndarray]]


@dataclass(frozen=True)
class MultinomialFit:
    """A fitted model, as Spark's LogisticRegressionModel and its training summary."""

    coefficients: np.ndarray  # (n_classes, n_features), original feature space, as Spark's coefficientMatrix
    intercepts: np.ndarray  # (n_classes,), as Spark's interceptVector
    iterations: int  # as Spark's summary.totalIterations (len(objective_history) - 1)
    converged: bool  # stopped by a convergence criterion, not by max_iter or a failed search
    reason: str  # "function values converged", "gradient converged", "max iterations", "search failed", "single class"
    objective_history: tuple[float, ...]  # as Spark's summary.objectiveHistory


class _SearchError(Exception):
    """Breeze's FirstOrderException: no usable direction or step this iteration."""


class _Point(NamedTuple):
    """A line-search point: step t, objective value and directional derivative there (Breeze's Bracket)."""

    t: np.float64
    value: np.float64
    slope: np.float64


def fit_multinomial(
    features: np.ndarray, label_counts: np.ndarray, max_iter: int, reg_param: float, tolerance: float
) -> MultinomialFit:
    """Fit as Spark does on the rows the count table stands for (each with weight 1).

    `features` is (n_rows, n_features), one row per distinct feature vector; `label_counts` is
    (n_rows, n_labels): how many instances with that vector have label 0..n_labels-1. As in Spark
    without label metadata, the classes are 0..(highest label that occurs).
    """
    x, counts = _validated(features, label_counts, max_iter, reg_param, tolerance)
    occurs = counts.sum(axis=1) > 0
    x, counts = x[occurs], counts[occurs]
    histogram = counts.sum(axis=0)
    n_classes = int(np.flatnonzero(histogram)[-1]) + 1
    histogram, counts = histogram[:n_classes], counts[:, :n_classes]
    n_features = x.shape[1]

    if np.count_nonzero(histogram) == 1:
        # Spark does not train: zero coefficients, +inf intercept for the one class, the rest 0.
        intercepts = np.where(np.arange(n_classes) == np.argmax(histogram), np.inf, 0.0)
        return MultinomialFit(np.zeros((n_classes, n_features)), intercepts, 0, True, "single class", (0.0,))

    mean, std = _mean_std(x, counts.sum(axis=1))
    inverse_std = np.divide(1.0, std, out=np.zeros_like(std), where=std != 0)
    scaled_mean = inverse_std * mean

    # Column-major (feature-major) layout, intercepts last: element j * n_classes + k is class k.
    initial = np.zeros((n_features + 1, n_classes))
    smoothed = np.log1p(histogram).tolist()
    initial[n_features] = np.array(smoothed) - sum(smoothed) / n_classes

    objective = _Cached(_objective(x * inverse_std, scaled_mean, counts, reg_param))
    with np.errstate(all="ignore"):  # IEEE results (inf, NaN) as on the JVM; Breeze reacts to them
        solution, history, reason = _lbfgs(objective, initial.ravel(), max_iter, tolerance)

    # Undo the centering (intercepts) and the scaling (coefficients), as LogisticRegression.train does.
    scaled_coefficients = solution.reshape(n_features + 1, n_classes)[:n_features]
    intercepts = solution[n_features * n_classes :] - scaled_mean @ scaled_coefficients
    coefficients = np.divide(scaled_coefficients.T, std, out=np.zeros((n_classes, n_features)), where=std != 0)
    if reg_param == 0.0:  # not identifiable without regularization: Spark centers them across classes
        coefficients -= coefficients.mean(axis=0)
    intercepts = intercepts - sum(intercepts.tolist()) / n_classes
    return MultinomialFit(
        coefficients=coefficients,
        intercepts=intercepts,
        iterations=len(history) - 1,
        converged=reason in ("function values converged", "gradient converged"),
        reason=reason,
        objective_history=tuple(history),
    )


def probabilities(fit: MultinomialFit, features: np.ndarray) -> np.ndarray:
    """Class probabilities (n_rows, n_classes), as the "probability" column of Spark's model.transform."""
    return _softmax(np.asarray(features, dtype=np.float64) @ fit.coefficients.T + fit.intercepts)


def _validated(
    features: np.ndarray, label_counts: np.ndarray, max_iter: int, reg_param: float, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    counts = np.asarray(label_counts, dtype=np.float64)
    if x.ndim != 2 or counts.ndim != 2 or x.shape[0] != counts.shape[0]:
        raise ValueError(f"features {x.shape} and label_counts {counts.shape} must be 2-D with the same rows")
    if not np.isfinite(x).all():
        raise ValueError("feature values must not be NaN or infinite")
    if not np.isfinite(counts).all() or (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError("label counts must be finite, non-negative whole numbers")
    if counts.sum() == 0:
        raise ValueError("no instance to fit on: all label counts are 0")
    if max_iter < 0 or reg_param < 0 or tolerance < 0:
        raise ValueError("max_iter, reg_param and tolerance must be >= 0")
    return x, counts


def _mean_std(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spark's Summarizer mean and std over the unit-weight rows the table stands for.

    The sample variance divides by N - 1 (weightSum - weightSquareSum / weightSum with unit
    weights), and is exactly 0 for a constant feature, as Summarizer's update gives.
    """
    total = weights.sum()
    mean = weights @ x / total
    if total <= 1:
        return mean, np.zeros(x.shape[1])
    variance = np.maximum(weights @ (x - mean) ** 2 / (total - 1), 0.0)
    return mean, np.where(np.ptp(x, axis=0) == 0, 0.0, np.sqrt(variance))


def _objective(x_scaled: np.ndarray, scaled_mean: np.ndarray, counts: np.ndarray, reg_param: float) -> Objective:
    """MultinomialLogisticBlockAggregator + L2Regularization: mean log-loss over the instances of
    the standardized, virtually centered features, plus 0.5 * reg_param * ||coefficients||^2.

    A row stands for its count of instances: its loss is sum_k n_k * -log p_k, and its gradient
    multiplier for class k is (sum_k n_k) * p_k - n_k, the sum of the instances' p_k - [label == k].
    """
    n_features, n_classes = x_scaled.shape[1], counts.shape[1]
    row_weights = counts.sum(axis=1, keepdims=True)
    weight_sum = counts.sum()
    observed = counts > 0

    def calculate(theta: np.ndarray) -> tuple[np.float64, np.ndarray]:
        coefficients = theta[: n_features * n_classes].reshape(n_features, n_classes)
        intercepts = theta[n_features * n_classes :]
        probs = _softmax(x_scaled @ coefficients + (intercepts - scaled_mean @ coefficients))
        log_probs = np.log(probs, out=np.zeros_like(probs), where=observed)
        multipliers = row_weights * probs - counts
        multiplier_sums = multipliers.sum(axis=0)
        coefficient_gradient = (x_scaled.T @ multipliers - np.outer(scaled_mean, multiplier_sums)) / weight_sum
        coefficient_gradient += reg_param * coefficients
        loss = -np.sum(counts * log_probs) / weight_sum + 0.5 * reg_param * np.sum(coefficients**2)
        return np.float64(loss), np.concatenate([coefficient_gradient.ravel(), multiplier_sums / weight_sum])

    return calculate


def _softmax(margins: np.ndarray) -> np.ndarray:
    """Spark's Utils.softmax per row: a +inf margin takes all the mass (the first one); otherwise
    exp(margin - max margin), scaled by 1 / sum."""
    with np.errstate(invalid="ignore", divide="ignore"):
        top = np.fmax.reduce(margins, axis=1, initial=-np.finfo(np.float64).max)
        exps = np.exp(margins - top[:, None])
        probs = exps * (1.0 / exps.sum(axis=1))[:, None]
    infinite = np.isposinf(margins)
    rows = infinite.any(axis=1)
    if rows.any():
        probs[rows] = 0.0
        probs[rows, infinite[rows].argmax(axis=1)] = 1.0
    return probs


class _Cached:
    """Breeze's CachedDiffFunction: the last point's value and gradient (the line search's
    accepted point is the next iterate)."""

    def __init__(self, function: Objective) -> None:
        self._function = function
        self._last: tuple[np.ndarray, np.float64, np.ndarray] | None = None

    def __call__(self, theta: np.ndarray) -> tuple[np.float64, np.ndarray]:
        if self._last is None or not np.array_equal(theta, self._last[0]):
            self._last = (theta.copy(), *self._function(theta))
        return self._last[1], self._last[2]


def _lbfgs(
    objective: Objective, x0: np.ndarray, max_iter: int, tolerance: float
) -> tuple[np.ndarray, list[float], str]:
    """Breeze's FirstOrderMinimizer.iterations for LBFGS(max_iter, 10, tolerance): the final point,
    the value of every state it emits (Spark's objectiveHistory) and why it stopped."""
    x = x0
    value, grad = objective(x)
    initial_value, iteration = value, 0
    steps: list[np.ndarray] = []  # newest first, at most _MEMORY
    grad_deltas: list[np.ndarray] = []
    recent_values = [math.inf]  # FunctionValuesConverged's info
    search_failed = failed_once = False
    history = [float(value)]
    while True:
        reason = _convergence(iteration, max_iter, value, grad, initial_value, recent_values, search_failed, tolerance)
        if reason:
            return x, history, reason
        try:
            direction = _inverse_hessian_times(steps, grad_deltas, grad)
            step = _line_search(objective, x, direction, 1.0 / np.linalg.norm(direction) if iteration == 0 else 1.0)
            if step * np.linalg.norm(grad) < _MIN_STEP:
                raise _SearchError("step size underflow")
            new_x = direction * step + x
            new_value, new_grad = objective(new_x)
            steps = [new_x - x, *steps][:_MEMORY]
            grad_deltas = [new_grad - grad, *grad_deltas][:_MEMORY]
            recent_values = [*recent_values, new_value][-_FVAL_MEMORY:]
            x, value, grad, iteration = new_x, new_value, new_grad, iteration + 1
            failed_once = False
        except _SearchError:
            # The first failure resets the history and emits the same state again; the second gives up.
            if failed_once:
                search_failed = True
            else:
                failed_once = True
                steps, grad_deltas = [], []
        history.append(float(value))


def _convergence(
    iteration: int,
    max_iter: int,
    value: np.float64,
    grad: np.ndarray,
    initial_value: np.float64,
    recent_values: list[float],
    search_failed: bool,
    tolerance: float,
) -> str | None:
    """defaultConvergenceCheck(maxIter, tolerance), relative, with 20 function values, in its order."""
    if iteration >= max_iter:
        return "max iterations"
    if len(recent_values) >= 2 and abs(value - max(recent_values)) <= tolerance * abs(initial_value):
        return "function values converged"
    if np.linalg.norm(grad) <= max(tolerance * abs(value), _MIN_GRADIENT_NORM):
        return "gradient converged"
    if search_failed:
        return "search failed"
    return None


def _inverse_hessian_times(steps: list[np.ndarray], grad_deltas: list[np.ndarray], grad: np.ndarray) -> np.ndarray:
    """LBFGS.ApproximateInverseHessian * grad, negated: the two-loop recursion (newest pair first)."""
    diag = 1.0
    if steps:
        sy, yy = steps[0] @ grad_deltas[0], grad_deltas[0] @ grad_deltas[0]
        if sy < 0 or np.isnan(sy):
            raise _SearchError("NaN history")
        diag = sy / yy
    direction = grad.copy()
    rhos = [s @ y for s, y in zip(steps, grad_deltas, strict=True)]
    alphas = []
    for s, y, rho in zip(steps, grad_deltas, rhos, strict=True):
        alpha = (s @ direction) / rho
        if np.isnan(alpha):
            raise _SearchError("NaN history")
        direction -= alpha * y
        alphas.append(alpha)
    direction *= diag
    for s, y, rho, alpha in reversed(list(zip(steps, grad_deltas, rhos, alphas, strict=True))):
        beta = (y @ direction) / rho
        direction += (alpha - beta) * s
    return -direction


def _line_search(objective: Objective, x: np.ndarray, direction: np.ndarray, init: float) -> np.float64:
    """StrongWolfeLineSearch(10, 10).minimize: a step meeting the strong Wolfe conditions. The
    comparisons keep Breeze's form, so NaN values take the same branches."""

    def phi(t: np.float64) -> _Point:
        value, grad = objective(direction * t + x)
        return _Point(t, value, grad @ direction)

    def curvature(point: _Point) -> bool:
        return abs(point.slope) <= _C2 * abs(start.slope)

    def zoom(low: _Point, high: _Point) -> np.float64:
        for _ in range(_LINE_SEARCH_ITER):
            t = _interpolate(high, low) if low.t > high.t else _interpolate(low, high)
            if np.isnan(t):
                raise _SearchError("line search zoom failed")
            point = phi(t)
            if point.value > start.value + _C1 * point.t * start.slope or point.value >= low.value:
                high = point
            else:
                if curvature(point):
                    return point.t
                if point.slope * (high.t - low.t) >= 0:
                    high = low
                low = point
        raise _SearchError("line search zoom failed")

    start = low = phi(np.float64(0.0))
    if start.slope > 0:
        raise _SearchError(f"line search invoked with non-descent direction: {start.slope}")
    t = np.float64(init)
    for i in range(_LINE_SEARCH_ITER):
        point = phi(t)
        if np.isinf(point.value) or np.isnan(point.value):
            t /= 2.0
            continue
        if point.value > start.value + _C1 * point.t * start.slope or (point.value >= low.value and i > 0):
            return zoom(low, point)
        if curvature(point):
            return point.t
        if point.slope >= 0:
            return zoom(point, low)
        low = point
        t *= 1.5  # the bound is +inf
    raise _SearchError("line search failed")


def _interpolate(left: _Point, right: _Point) -> np.float64:
    """CubicLineSearch.interp: the cubic's minimizer, kept within 10%-90% of the bracket."""
    d1 = left.slope + right.slope - 3 * (left.value - right.value) / (left.t - right.t)
    d2 = np.sqrt(d1 * d1 - left.slope * right.slope)
    t = right.t - (right.t - left.t) * (right.slope + d2 - d1) / (right.slope - left.slope + 2 * d2)
    lower, upper = left.t + 0.1 * (right.t - left.t), left.t + 0.9 * (right.t - left.t)
    if t < lower:
        return lower
    if t > upper:
        return upper
    return t
