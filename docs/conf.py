"""Sphinx configuration of the MP-BADNet documentation (``nox -s docs``).

The normative text lives in ``spec/`` at the repository root, outside this source
directory. The local extension ``docs/_ext/mpbadnet_docs.py`` copies it into
``docs/_generated/spec/`` (ignored by git) before Sphinx looks for sources, links every
``Implemented by:`` line of the spec to the API of refimpl and fast, and links the ``§N.M``
anchor that opens every public docstring back to the spec section.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# autodoc imports refimpl, fast and conformance from the working tree (no installation needed).
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

with (ROOT / "pyproject.toml").open("rb") as pyproject:
    _project = tomllib.load(pyproject)["project"]

project = "MP-BADNet"
author = "MP-BADNet contributors"
copyright = "MP-BADNet contributors"
release = _project["version"]
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "mpbadnet_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/__pycache__"]

# -- MyST --------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc -----------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_type_aliases = {
    "Array": "fast.ring.Array",
    "ArrayLike": "numpy.typing.ArrayLike",
}
autoclass_content = "class"
python_use_unqualified_type_names = True
add_module_names = False

# -- local extension (docs/_ext/mpbadnet_docs.py) -----------------------------------------
mpbadnet_spec_source = "../spec"  # relative to this directory
mpbadnet_spec_target = "_generated/spec"  # relative to this directory, ignored by git
mpbadnet_implementations = ["refimpl", "fast"]  # "Implemented by" links name both

# -- HTML --------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"MP-BADNet {release}"
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": True}
