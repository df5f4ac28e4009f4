"""gRPC for micro services."""
