"""Retraining the embedded model: corpus, tokenizer ranks, training loop. The CLI imports only the corpus,
for `tracegpt neuron --build-index` (which scans the training text)."""
