"""What one generation run draws: conf/sample_data.yaml plus scale, seed and years."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onderwijsscore.config import Config


@dataclass(frozen=True)
class SampleSpec:
    """What one generation run draws: conf/sample_data.yaml plus scale, seed and years."""

    conf: dict[str, Any]
    scale: float
    seed: int
    years: tuple[int, ...]

    @classmethod
    def from_config(cls, config: Config, scale: float, seed: int, years: list[int] | tuple[int, ...]) -> SampleSpec:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not years:
            raise ValueError("at least one year is needed")
        return cls(config["sample_data"], float(scale), int(seed), tuple(sorted(set(years))))

    @property
    def first_year(self) -> int:
        return self.years[0]

    @property
    def last_year(self) -> int:
        return self.years[-1]

    @property
    def closed_until(self) -> int | None:
        """The last year closed vestigingen exist; None when they outlive the data."""
        keep = self.conf["schools"]["closed_after_years"]
        return self.years[keep - 1] if len(self.years) > keep else None

    @property
    def max_duration(self) -> int:
        students = self.conf["students"]
        return max(*students["durations"].values(), *students["pro_durations"])
