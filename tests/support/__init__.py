"""Shared test helpers: polling with deadlines, factories, tiny models."""
