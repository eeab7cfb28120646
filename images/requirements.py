"""Print requirements from pyproject.toml, one a line: the project's plus those of the
extras named, or with --images those of every extra an image installs.

The runtime image (images/runtime/Dockerfile) installs these in a layer of their own, before
copying the sources, so a source change rebuilds only the small layer that installs the
project itself. lib/mlbatch/codeversion.py hashes the same list (IMAGE_EXTRAS there).
Usage: python3 requirements.py --images | EXTRA...
"""

import sys
import tomllib

# The stages' extras and the controller's (kubernetes): what the images run.
IMAGE_EXTRAS = ("etl", "explore", "features", "train", "evaluate", "predict", "kubernetes")

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]
extras = IMAGE_EXTRAS if sys.argv[1:] == ["--images"] else sys.argv[1:]
lines = list(project["dependencies"])
for extra in extras:
    lines += [line for line in project["optional-dependencies"][extra] if line not in lines]
print("\n".join(lines))
