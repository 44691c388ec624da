"""The canary ramp: a pure policy (``policy.decide``) and the loop that applies it."""
