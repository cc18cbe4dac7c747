"""Competition declarations: one sub-package each, holding a `COMPETITION` value and its plans."""
