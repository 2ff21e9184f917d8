"""Helpers shared by test suites (the official ghga-connector runner, ...)."""
