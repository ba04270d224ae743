"""Reviewers: each reads a trace's units and returns a `Review` of its causal structure."""

from .oracle import OracleReviewer

__all__ = ["OracleReviewer"]
