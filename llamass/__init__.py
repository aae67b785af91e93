__version__ = "0.1.0"

import importlib


def __getattr__(name):
    "The public API of `llamass.core`, also importable as `from llamass import AMASS` (loaded on first use)."
    core = importlib.import_module("llamass.core")
    if name in core.__all__: return getattr(core, name)
    raise AttributeError(f"module 'llamass' has no attribute {name!r}")
