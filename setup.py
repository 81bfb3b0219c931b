"""Installable package `onderwijsscore` (source root `lib/`); `make dist` builds the zip for --py-files."""

import re
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_INIT = ("lib", "onderwijsscore", "__init__.py")
requirements = [
    line.split("#")[0].strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip() and not line.startswith(("pytest", "ruff", "scikit-learn", "scipy", "PyHive", "thrift", "pure-sasl"))
]

setup(
    name="onderwijsscore",
    version=re.search(r"__version__ = \"(.+)\"", Path(__file__).parent.joinpath(*PACKAGE_INIT).read_text())[1],
    description="Dutch education-funding indicators (lwoo, praktijkonderwijs) from register microdata, on Spark and Delta",
    python_requires=">=3.11,<3.12",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    install_requires=requirements,
)
