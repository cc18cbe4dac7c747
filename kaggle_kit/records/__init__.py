"""What a run leaves on disk: the run folder and its config.json, a fold group's folder, the pseudo-label
record. Layout only: no training or inference here."""
