"""Submission files (write, validate, score against answers), which run wrote them (provenance), the
submissions ledger, and how well validation has tracked the public score."""
