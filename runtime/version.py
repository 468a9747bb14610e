"""nbento's version, written only here: pyproject.toml reads it (hatch's version source),
`runtime.__version__` and `nbento.__version__` import it, and a test holds
labextension/package.json to it."""

__version__ = "0.1.0"
