"""Commands built from the stages above: `init` (a declaration from a download), cross-validation (fold
groups and OOF predictions), pseudo-labelling, ensembles, the demo."""
