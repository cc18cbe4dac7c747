"""The recipe: one frozen `Recipe` (every training setting) and its `train` flags, both ways."""
