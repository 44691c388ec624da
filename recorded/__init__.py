"""What was recorded, read back from Redis for analysis: reports, drift and status.

The gateway, the ramp and the CLI call down into it; see docs/architecture.md.
"""
