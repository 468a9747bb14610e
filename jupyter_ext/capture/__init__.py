"""Capture: notebook cells (live in a kernel, or read from an .ipynb) -> one service module."""

from __future__ import annotations

from jupyter_ext.capture.offline import source_from_notebook

__all__ = ["source_from_notebook"]
