"""One head's attention as a text heatmap, from the Python API and numpy.

    python examples/attention_heatmap.py "To be, or not to be" 3 2
"""

import sys

import numpy as np

import tracegpt

prompt = sys.argv[1] if len(sys.argv) > 1 else "To be, or not to be"
layer = int(sys.argv[2]) if len(sys.argv) > 2 else 3
head = int(sys.argv[3]) if len(sys.argv) > 3 else 2

lm = tracegpt.load()
trace = tracegpt.run_trace(lm, prompt, layers=[layer], stages=["attn.weights"])
weights = trace[f"blocks.{layer}.attn.weights"][head].numpy()  # rows: queries, columns: keys
assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)

shades = " ░▒▓█"
labels = [t.replace(" ", "␣") for t in trace.token_texts]
width = max(len(s) for s in labels)
print(f"layer {layer}, head {head}: row = token asking, column = token asked")
for i, row in enumerate(weights):
    cells = "".join(shades[min(4, int(w * 5))] * 2 if j <= i else "··" for j, w in enumerate(row))
    print(f"{labels[i]:>{width}} {cells}  max {row.max():.2f} from {labels[int(row.argmax())]}")
