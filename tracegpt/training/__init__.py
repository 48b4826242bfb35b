"""Retraining the embedded model: corpus, tokenizer ranks, training loop. Not imported by the CLI."""
