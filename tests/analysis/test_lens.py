import torch

from tracegpt.analysis.lens import logit_lens, residual_stages
from tracegpt.tracer import run_trace


def test_last_row_is_the_real_output(lm):
    trace = run_trace(lm, "To be, or not to be")
    lens = logit_lens(lm, trace, focus=trace.n_tokens - 1)
    assert lens.stages == residual_stages(4)
    assert (lens.probs[-1] - trace["probs"]).abs().max().item() <= 1e-5
    assert lens.final_id == int(trace["probs"][-1].argmax()) and lens.final_ranks[-1] == 1


def test_every_row_is_the_final_readout_of_that_depth(lm):
    trace = run_trace(lm, "My lord, I love thee")
    lens = logit_lens(lm, trace, focus=2)
    with torch.no_grad():
        x = trace["blocks.1.resid_out"]
        expected = torch.softmax(lm.model.ln_f(x) @ lm.model.wte.weight.T, -1)
    assert torch.allclose(lens.probs[2], expected, atol=1e-6)
    focus_probs = lens.probs[:, 2, :]
    for row, rank in enumerate(lens.final_ranks):
        p = focus_probs[row, lens.final_id]
        assert rank == int((focus_probs[row] > p).sum()) + 1
