"""The config directory as read: every YAML file of `conf/`, with a stable hash for the
run record. `onderwijsscore.settings` turns the rule files into typed settings."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Config:
    """All YAML files of a conf directory, keyed by their path without `.yaml`
    (`spark`, `pipeline`, `models/pro`, ...)."""

    conf_dir: Path
    files: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        try:
            return self.files[name]
        except KeyError:
            raise KeyError(f"config file {name}.yaml not found in {self.conf_dir}") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self.files.get(name, default)

    @property
    def hash(self) -> str:
        """sha256 over the parsed content, independent of file order and formatting."""
        canonical = json.dumps(self.files, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_overrides(self, name: str, **values: Any) -> Config:
        """A copy with top-level keys of one file replaced (tests, CLI flags)."""
        files = dict(self.files)
        files[name] = {**files.get(name, {}), **values}
        return Config(self.conf_dir, files)


def conf_dir_beside(job_file: str | os.PathLike) -> Path:
    """A job's default config directory: `conf/` in the project folder that holds the job's
    `jobs/` folder (a checkout, or what an administrator copied to the cluster)."""
    return Path(job_file).resolve().parent.parent / "conf"


def load_config(conf_dir: str | os.PathLike) -> Config:
    root = Path(conf_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"config directory {root} does not exist")
    files = {}
    for path in sorted(root.rglob("*.yaml")):
        with path.open() as handle:
            files[str(path.relative_to(root).with_suffix(""))] = yaml.safe_load(handle) or {}
    return Config(root, files)
