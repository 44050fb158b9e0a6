"""Sphinx configuration: MyST markdown pages, furo theme, autodoc for the API page."""

from __future__ import annotations

from importlib.metadata import version as _version

project = "aiovideoextend"
author = "aiovideoextend developers"
copyright = "2026, aiovideoextend developers"
release = _version("aiovideoextend")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "aiovideoextend"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
