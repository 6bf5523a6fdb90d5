"""Artifact stores the operator reads and verifies; S3 is the one we have."""
