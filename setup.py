"""Packaging beside pyproject.toml: the top-level conf/ folder ships inside the package as
`recx/_conf`, mapped at build time, so the repository keeps one copy of the configs and an
installed wheel reads the same files as an editable checkout (`recx.config.location.conf_dir`)."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
CONF = ROOT / "conf"
# every folder of conf/ becomes a data package recx._conf[.<sub>]; conf/local/ holds
# machine-specific settings and never ships
conf_packages = ["recx._conf", *sorted(
    "recx._conf." + ".".join(d.relative_to(CONF).parts)
    for d in CONF.rglob("*") if d.is_dir() and "local" not in d.relative_to(CONF).parts)]

setup(
    # namespace packages too: recx/data and recx/train have no __init__.py
    packages=[*find_namespace_packages(include=["recx", "recx.*"], exclude=["*__pycache__"]),
              *conf_packages],
    package_dir={"recx._conf": "conf"},
    package_data={"recx.data": ["*.json"], **{p: ["*.yaml"] for p in conf_packages}},
    include_package_data=False,
)
