"""Learning from a stream: online estimators over the per-example kernel and feature hashing."""
