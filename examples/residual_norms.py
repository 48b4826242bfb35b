"""Follow one token's residual stream through the blocks: revised at every step, never replaced.

    python examples/residual_norms.py "My lord," [position]
"""

import sys

import tracegpt

prompt = sys.argv[1] if len(sys.argv) > 1 else "My lord,"
lm = tracegpt.load()
trace = tracegpt.run_trace(lm, prompt, stages=["embed.sum", "resid_attn", "resid_out", "attn.out", "mlp.out"])
position = int(sys.argv[2]) if len(sys.argv) > 2 else trace.n_tokens - 1

x = trace["embed.sum"][position]
print(f"{trace.token_texts[position]!r} at position {position}")
print(f"  embedding          ‖x‖ = {x.norm():7.2f}")
for layer in range(lm.config.n_layer):
    p = f"blocks.{layer}."
    attn, mlp = trace[p + "attn.out"][position], trace[p + "mlp.out"][position]
    after = trace[p + "resid_out"][position]
    # The stream after a block is exactly what came in plus the two updates.
    assert (x + attn + mlp - after).abs().max() < 1e-4
    print(f"  block {layer}: + attn ‖{attn.norm():6.2f}‖ + ffn ‖{mlp.norm():6.2f}‖ → ‖x‖ = {after.norm():7.2f}")
    x = after
