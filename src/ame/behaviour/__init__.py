"""The gather step: behaviour kinds and the behaviour matrix of a run."""
