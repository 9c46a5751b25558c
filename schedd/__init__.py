"""schedd: a scheduler daemon for one host."""

__version__ = "0.1.0"
