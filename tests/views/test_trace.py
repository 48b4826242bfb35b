import io

import pytest
from rich.console import Console

from tracegpt import stages
from tracegpt.analysis.forward import forward_summary
from tracegpt.tracer import check_position, run_trace
from tracegpt.views import trace as trace_view


def render(lm, prompt, width, layers=None, focus=-1):
    trace = run_trace(lm, prompt, layers=layers)
    summary = forward_summary(trace, check_position(trace.n_tokens, focus), 5, lm.token_text, layers=layers)
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(trace_view.render(summary))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 200])
def test_every_stage_of_every_shown_block_is_there(lm, width):
    text = render(lm, "To be, or not to be", width)
    assert max(len(line) for line in text.splitlines()) <= width
    sections = text.split("Block ")
    assert len(sections) == 1 + 4
    for section in sections[1:]:
        flat = " ".join(section.split())
        for stage in stages.BLOCK:
            assert stage in flat, stage
    for stage in ("embed.token", "embed.position", "embed.sum", "ln_f", "logits", "probs"):
        assert stage in text


def test_only_the_chosen_blocks_are_shown(lm):
    text = render(lm, "I love", 120, layers=[2])
    assert "Block 2" in text and "Block 0" not in text and "Block 3" not in text


def test_explanations_carry_the_live_numbers(lm):
    trace = run_trace(lm, "I love")
    w = trace["blocks.1.attn.weights"][2, 1]  # head 2, focus ' love'
    best = int(w.argmax())
    text = render(lm, "I love", 200)
    expected = f"head 2: {trace_view.pct(w[best].item())} from {trace_view.quoted(trace.token_texts[best])}@{best}"
    assert expected in text


def test_partial_characters_show_their_bytes(lm):
    text = render(lm, "😀", 120)
    assert "f0 (part of a character)" in text and "80 (part of a character)" in text


def test_long_prompts_fold_the_token_table(lm):
    text = render(lm, " thee" * 100, 80)
    assert "tokens not shown" in text


def test_ffn_lines_name_neurons_as_tracegpt_neuron_takes_them(lm):
    trace = run_trace(lm, "I love")
    act = trace["blocks.2.mlp.act"][1]
    best = int(act.argmax())
    text = " ".join(render(lm, "I love", 200).split())
    assert f"strongest 2.{best} ({act[best].item():.2f})" in text
    first = int(trace["blocks.0.mlp.act"][1].argmax())
    assert text.count("tells what a neuron does") == 1  # one hint, under the first FFN line
    assert f"tracegpt neuron 0.{first} tells what a neuron does" in text
