"""nbento's notebook side: `%load_ext jupyter_ext` for the magics, the Jupyter server
extension behind the JupyterLab panel, and the ipywidgets panel."""

from __future__ import annotations
