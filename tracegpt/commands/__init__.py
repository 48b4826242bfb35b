"""What each command does, between parsing (cli.py) and rendering (views/): one module per command.

Heavy imports (torch) happen inside the functions, so `tracegpt --help` never loads torch.
"""
