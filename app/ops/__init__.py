"""Endpoints for load balancers and monitoring: liveness, readiness and metrics."""
