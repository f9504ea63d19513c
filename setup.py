"""Only the package list, discovered: the rest of the build is declared in pyproject.toml.

``package-dir`` there maps ``servers/`` and ``orchestrator/`` under the ``llmmixer`` namespace, which setuptools'
own ``packages.find`` cannot prefix; so every folder with an ``__init__.py`` is listed here, and adding a server
package (CONTRIBUTING.md) needs no line in any build file beyond its entry point.
"""

from setuptools import find_packages, setup

ROOTS = {"llmmixer": "llmmixer", "llmmixer.servers": "servers", "llmmixer.orchestrator": "orchestrator"}

setup(packages=[*ROOTS, *(f"{name}.{sub}" for name, folder in ROOTS.items() if name != "llmmixer"
                          for sub in find_packages(folder, exclude=["*.tests", "*.tests.*"]))])
