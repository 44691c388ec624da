"""The floor every product package stands on: errors, process settings, logging,
tracing, HTTP error bodies, the Redis schema and the one module that talks to Redis.

It imports no product package but ``analysis`` (the schema decodes into its
statistics); see docs/architecture.md.
"""
