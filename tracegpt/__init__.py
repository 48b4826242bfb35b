"""tracegpt: open up a GPT's forward pass and see every stage, with real numbers."""

__version__ = "0.1.0"
