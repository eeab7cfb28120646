"""Print the requirements of the project plus one extra, from pyproject.toml, one a line.

The image builds install these in a layer of their own, before copying the sources, so a
source change rebuilds only the small layer that installs the project itself.
Usage: python3 requirements.py EXTRA
"""

import sys
import tomllib

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]
extra = sys.argv[1]
print("\n".join([*project["dependencies"], *project["optional-dependencies"][extra]]))
