"""A stand-in for a fork of an upstream package."""

__version__ = "2.0.1"
