"""Rich renderings, one module per command: pure functions from data to renderables."""
