"""gencourse: the helper library of an executable textbook on deep generative models.

Importing the package does no work: no downloads, no prints, no argument parsing.
Chapters import the modules they need, e.g. ``from gencourse import data, train``.
"""
__version__ = "0.1.0"

from .utils import budget, get_device, run_mode, seed_everything, setup  # noqa: E402,F401
