"""tracegpt: open up a GPT's forward pass and see every stage, with real numbers.

    import tracegpt
    lm = tracegpt.load()                        # the embedded Shakespeare model
    trace = tracegpt.run_trace(lm, "I love")
    trace["blocks.3.attn.weights"]              # any stage, by its name
    tracegpt.trace_to_dict(trace, lm.token_text)  # the dict `tracegpt trace --json` prints
"""

__version__ = "0.1.0"

# The API is imported on first use, so `import tracegpt` (and `tracegpt --help`) never loads torch.
_API = {
    "load": "loader",
    "LoadedModel": "loader",
    "run_trace": "tracer",
    "Trace": "tracer",
    "Tracer": "tracer",
    "trace_to_dict": "export",
    "save_npz": "export",
    "stage_names": ("stages", "names"),
    "parse_site": "stages",
    "intervene": "api",
    "generate": "api",
    "patching_sweep": "api",
    "ablate": "api",
    "cut": "api",
    "patch": "api",
    "steer": "api",
    "Tap": "taps",
    "GPT": "model",
    "GPTConfig": "model",
}

# --- score: a text graded token by token (tracegpt score) ---
_API.update({
    "score": ("analysis.scoring", "score"),
    "Score": ("analysis.scoring", "Score"),
    "compare_scores": ("analysis.scoring", "compare"),
})

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        import importlib

        module, attr = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'tracegpt' has no attribute {name!r}")
