"""Random draws: pure functions of (seed, attribute, keys), so the output depends
only on config, scale, seed and years, never on partitioning or row order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import reduce
from itertools import accumulate
from statistics import NormalDist
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from onderwijsscore.contract import CANONICAL_TYPES, CONTRACT

_MANTISSA_BITS = 53


def uniform(seed: int, attribute: str, *keys: Column | str) -> Column:
    """A uniform draw in (0, 1), fixed by seed, attribute name and entity keys."""
    bits = F.xxhash64(F.lit(seed), F.lit(attribute), *keys).bitwiseAND(F.lit((1 << _MANTISSA_BITS) - 1))
    return (bits + 0.5) / float(1 << _MANTISSA_BITS)


def normal(seed: int, attribute: str, *keys: Column | str) -> Column:
    """A standard-normal draw (Box-Muller over two uniforms)."""
    radius = F.sqrt(F.log(uniform(seed, f"{attribute}:radius", *keys)) * -2.0)
    return radius * F.cos(uniform(seed, f"{attribute}:angle", *keys) * (2 * math.pi))


def opaque_id(prefix: str, seed: int, kind: str, *keys: Column | str) -> Column:
    """A pseudonymous id: prefix plus the 16 hex digits of a 64-bit hash (collisions ~1e-7 at 10M ids)."""
    return F.concat(F.lit(prefix), F.lpad(F.hex(F.xxhash64(F.lit(seed), F.lit(f"id:{kind}"), *keys)), 16, "0"))


def shares(mapping: Mapping[Any, float], name: str) -> dict[Any, float]:
    """Shares normalised to sum 1; a config typo that moves the sum by more than 1 % is an error."""
    total = sum(mapping.values())
    if abs(total - 1) > 0.01:
        raise ValueError(f"sample_data {name}: shares sum to {total}, expected 1")
    return {key: value / total for key, value in mapping.items()}


def categorical(u: Column, mapping: Mapping[Any, float], name: str) -> Column:
    """The category whose cumulative-share interval holds the uniform draw `u`."""
    items = list(shares(mapping, name).items())
    bounds = accumulate(share for _, share in items)
    cases = [(u < bound, F.lit(code)) for (code, _), bound in zip(items[:-1], bounds, strict=False)]
    return first_match(cases, F.lit(items[-1][0]))


def ordered_category(latent: Column, mapping: Mapping[Any, float], name: str) -> Column:
    """For a standard-normal latent: the category between the normal quantiles of its cumulative shares."""
    items = list(shares(mapping, name).items())
    bounds = accumulate(share for _, share in items)
    cases = [
        (latent < NormalDist().inv_cdf(bound), F.lit(code))
        for (code, _), bound in zip(items[:-1], bounds, strict=False)
    ]
    return first_match(cases, F.lit(items[-1][0]))


def first_match(cases: list[tuple[Column, Column]], default: Column | None = None) -> Column:
    """CASE WHEN over (condition, value) pairs in order."""
    (condition, value), *rest = cases
    chain = reduce(lambda expr, case: expr.when(*case), rest, F.when(condition, value))
    return chain if default is None else chain.otherwise(default)


def lookup(column: Column | str, mapping: Mapping[Any, Any]) -> Column:
    """The mapping's value for the column's value (null when absent)."""
    column = F.col(column) if isinstance(column, str) else column
    return first_match([(column == F.lit(key), F.lit(value)) for key, value in mapping.items()])


def by_area(per_area: Mapping[str, Any], draw) -> Column:
    """`draw(settings)` with the big-city SWVs' settings or the rest's."""
    return F.when(F.col("big_city"), draw(per_area["big_city"])).otherwise(draw(per_area["rest"]))


def with_logit_shift(base_share: float, shift: Column) -> Column:
    """A probability whose log-odds are those of `base_share` moved by `shift`."""
    return 1.0 / (1.0 + F.exp(-(F.lit(math.log(base_share / (1 - base_share))) + shift)))


def normal_cdf(x: Column) -> Column:
    """Logistic approximation of the standard normal CDF (error < 0.01)."""
    return 1.0 / (1.0 + F.exp(x * -1.702))


def clamp(column: Column, low: int, high: int) -> Column:
    return F.least(F.greatest(column, F.lit(low)), F.lit(high))


def conform(frame: DataFrame, table: str) -> DataFrame:
    """The contract's columns, in its order, with its canonical types."""
    return frame.select(*[F.col(c.name).cast(CANONICAL_TYPES[c.kind]).alias(c.name) for c in CONTRACT[table].columns])
