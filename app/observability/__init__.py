"""What operators watch: Prometheus metrics and structured, secret-free logs."""
