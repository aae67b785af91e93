__version__ = "0.1.0"

from .core import *  # noqa: F401,F403  the public API, also importable as `from llamass import AMASS`
