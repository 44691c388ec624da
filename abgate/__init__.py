"""abgate: A/B and canary traffic-routing gateway for machine-learning models."""

__version__ = "0.1.0"
