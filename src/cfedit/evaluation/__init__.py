"""Evaluation: the protocol (:mod:`.protocol`), metrics with intervals, realism, and reports."""
