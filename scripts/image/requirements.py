"""Prints the project's dependencies, with those of the extras named, one requirement a line.

Usage: requirements.py [EXTRA ...]   (run where pyproject.toml is)

The image build installs them before it copies the source, so that a change of the source does not
reinstall them.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
