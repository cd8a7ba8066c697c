"""Training side: simulation, dataset building, training, evaluation and the `nba` CLI."""
