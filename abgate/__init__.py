"""abgate: A/B and canary traffic-routing gateway for machine-learning models."""

from core.version import __version__

__all__ = ["__version__"]
