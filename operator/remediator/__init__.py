"""remediator: from a signal to a verified, recorded recovery."""

__version__ = "0.1.0"
