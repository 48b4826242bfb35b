"""The generate views on hand-made steps: layout at 80 and 160 columns, markers, tints, texts."""

import pytest
import torch

from tracegpt.generation import STOP_REASONS, AttentionPeek, AttentionSpec, RunInfo, RunSummary, Step
from tracegpt.sampling import SamplingSettings, sample
from tracegpt.texts import load
from tracegpt.views import generate as view
from tracegpt.views.common import make_console, pct, quoted, weight_style

TEXTS = {0: " love", 1: " thee", 2: ",", 3: " and", 4: "\n", 5: " my", 6: " the", 7: " supercalifragilistic"}
MODEL = {"name": "tiny", "n_layer": 4, "n_head": 4, "d_model": 256, "n_ctx": 256, "vocab_size": 8, "n_params": 1}


def make_step(number, settings, seed=0, logits=(3.0, 2.5, 2.0, 1.0, 0.5, 0.2, 0.1, -1.0), cache=True):
    sampled = sample(torch.tensor(logits), settings, torch.Generator().manual_seed(seed))
    for c in sampled.candidates:
        c.text = TEXTS[c.id]
    position = 4 + number
    return Step(number=number, token_id=sampled.token_id, text=TEXTS[sampled.token_id], sampled=sampled,
                position=position, n_computed=5 if number == 1 or not cache else 1,
                cache_length=position if cache else 0,
                attention=AttentionPeek(layer=3, head=None, from_position=position - 1, position=1, text=" I",
                                        weight=0.42), seconds=0.001)


def header_of(width):
    return view.StepTable(width, with_model=False).header()


def step_line(step, width, before="ROMEO:\nI"):
    return view.StepTable(width, with_model=False).row(step, before)


def render(renderable, width):
    console = make_console(width=width, color=False, record=True)
    console.print(renderable)
    return console.export_text()


def run_info(settings):
    return RunInfo(model=MODEL, prompt="ROMEO:\nI", n_prompt_tokens=5, settings=settings, seed=7, use_cache=True,
                   max_new_tokens=8, attention=AttentionSpec(layer=3))


SAMPLED = SamplingSettings(temperature=0.8, top_k=5, top_p=0.9)


# --- the step table ---


@pytest.mark.parametrize("width", [80, 160])
def test_rows_fit_the_width_and_line_up_with_the_header(width):
    header = render(header_of(width), width).splitlines()[0]
    for seed in range(6):
        step = make_step(seed + 1, SAMPLED, seed=seed)
        lines = render(step_line(step, width), width).splitlines()
        assert all(len(line) <= width for line in lines)
        row = lines[0]
        # prob is right-aligned under its header; ctx, new and cache too
        for name, value in (("prob", pct(step.prob)), ("cache", str(step.cache_length)), ("ctx", str(step.position))):
            end = header.index(name) + len(name)
            assert row[end - len(value):end] == value, (name, header, row)


def test_wide_rows_carry_the_candidates_narrow_rows_put_them_below():
    step = make_step(1, SAMPLED, seed=1)
    wide = render(step_line(step, 160), 160).splitlines()
    narrow = render(step_line(step, 80), 80).splitlines()
    assert len(wide) == 1 and "▸" in wide[0]
    assert len(narrow) == 2 and "▸" not in narrow[0] and "▸" in narrow[1]
    assert narrow[1].startswith("     ")


def test_the_drawn_token_is_marked_among_the_candidates():
    step = make_step(1, SAMPLED, seed=3)
    line = view.candidates_line(step).plain
    assert line.count("▸") == 1
    assert f"▸'{TEXTS[step.token_id].replace(' ', '␣')}' {pct(step.prob)}" in line


def test_a_drawn_token_outside_the_top_5_is_added_to_the_line():
    logits = tuple([0.0] * 8)  # uniform: most draws land below the top 5
    step = next(s for s in (make_step(1, SamplingSettings(), seed=i, logits=logits) for i in range(50))
                if s.sampled.chosen.rank >= 5)
    line = view.candidates_line(step).plain
    assert line.count("'") == 12 and line.count("▸") == 1


def test_a_narrow_line_drops_unlikely_candidates_but_keeps_the_drawn_one():
    logits = (3.0, 2.9, 2.8, 2.7, 2.6, 0.2, 0.1, -1.0)
    step = next(s for s in (make_step(1, SamplingSettings(), seed=i, logits=logits) for i in range(50))
                if s.sampled.chosen.rank == 4)  # the least likely of the top 5 is drawn
    full = view.candidates_line(step).plain
    narrow = view.candidates_line(step, room=40).plain  # room for the top one, the drawn one and the others
    assert len(narrow) <= 40 < len(full)
    assert narrow.count("▸") == 1 and narrow.startswith(full[:len("' love' ")])
    # The wide table's candidates column keeps it whole too, rather than cutting it with "…".
    drawn = f"▸{quoted(TEXTS[step.token_id])} {pct(step.prob)}"
    for width in (110, 120, 160):
        assert drawn in render(step_line(step, width), width)


def test_long_tokens_are_cut_not_wrapped():
    logits = (0.0,) * 7 + (9.0,)  # the very long token wins
    step = make_step(1, SamplingSettings(greedy=True), logits=logits)
    step.text = TEXTS[step.token_id] * 3  # longer than the text column
    lines = render(step_line(step, 80), 80).splitlines()
    assert "…" in lines[0] and len(lines) == 2


def test_no_cache_rows_say_off():
    step = make_step(2, SAMPLED, cache=False)
    assert render(step_line(step, 80), 80).splitlines()[0].rstrip().endswith("off")


def test_looks_at_shows_token_position_and_weight():
    assert view.looks_at(make_step(1, SAMPLED)).plain == "'␣I'@1 42%"


# --- the pipeline ---


def test_sampling_pipeline_shows_each_cut_and_the_draw():
    step = make_step(2, SAMPLED, seed=4)
    out = render(view.pipeline(step, SAMPLED), 100)
    s = step.sampled
    assert f"Step 2: how the sampler chose '{TEXTS[step.token_id].replace(' ', '␣')}'" in out
    assert "temperature 0.8" in out and "top-k 5 keeps the 5 highest" in out
    prose = " ".join(out[: out.index("slice of [0,1)")].split())
    assert f"{s.n_top_p} tokens holding" in prose and f"u = {s.draw:.4f}" in prose
    table = out[out.index("slice of [0,1)"):].splitlines()[1:]
    rows = [line for line in table if line.strip() and line.strip()[0] in "▸0123456789"]
    assert len(rows) == 8
    cuts = [line for line in table if line.startswith("── top-")]
    assert cuts == [line for line in table if "cuts after rank" in line] and len(cuts) >= 1
    assert sum("▸" in r for r in rows) == 1
    assert all("cut" in r for r in rows[5:])  # below the top 5: cut by top-k, top-p not reached
    assert all("·" in r for r in rows[5:])
    kept = [r for r in rows if r.count("kept") == 2]
    assert len(kept) == s.n_top_p
    chosen = s.chosen
    assert f"{chosen.cum_start:.3f}–{chosen.cum_start + chosen.prob:.3f}" in next(r for r in rows if "▸" in r)


def test_pipeline_marks_a_far_chosen_token_after_an_ellipsis():
    logits = tuple([0.0] * 8)
    step = next(s for s in (make_step(1, SamplingSettings(), seed=i, logits=logits) for i in range(50))
                if s.sampled.chosen.rank >= 5)
    step.sampled.candidates = [c for c in step.sampled.candidates if c.rank < 3 or c.id == step.token_id]
    out = render(view.pipeline(step, SamplingSettings()), 100)
    assert "…" in out
    assert f"▸{step.sampled.chosen.rank + 1}" in out


def test_greedy_pipeline():
    step = make_step(1, SamplingSettings(greedy=True))
    out = render(view.pipeline(step, SamplingSettings(greedy=True)), 80)
    assert "Greedy: the highest of the 8 logits wins" in out
    assert "▸1" in out and "█" in out


@pytest.mark.parametrize("width", [80, 160])
def test_pipeline_fits(width):
    step = make_step(1, SAMPLED)
    assert all(len(line) <= width for line in render(view.pipeline(step, SAMPLED), width).splitlines())


# --- header, text, summary ---


def test_header_says_how_it_samples_and_what_the_columns_mean():
    out = render(view.header(run_info(SAMPLED)), 80)
    assert "temperature 0.8, top-k 5, top-p 0.9, seed 7" in out
    assert "KV cache on" in out and "block 3" in out
    greedy = render(view.header(run_info(SamplingSettings(greedy=True))), 80)
    assert "Greedy decoding" in greedy and "seed" not in greedy


def test_long_prompts_are_shortened_in_the_title():
    from tracegpt.texts import titled

    assert titled("x" * 30, 30) == "'" + "x" * 30 + "'"
    short = titled("a" * 100 + "the end", 17)
    assert short.endswith("the␣end' (17 tokens)") and "…" in short and len(short) < 70
    title = render(view.header(run_info(SAMPLED)), 80).splitlines()[0]
    assert "ROMEO:↵I" in title


def test_generated_tokens_are_tinted_by_their_probability():
    steps = [make_step(i + 1, SAMPLED, seed=i) for i in range(4)]
    group = view.tinted_text("ROMEO:", steps)
    text = group.renderables[2]
    assert text.plain == "ROMEO:" + "".join(s.text for s in steps)
    generated = [span for span in text.spans if span.start >= len("ROMEO:")]
    assert [str(span.style) for span in generated] == [weight_style(s.prob) for s in steps]


def test_end_of_text_is_shown_apart():
    step = make_step(1, SamplingSettings(greedy=True))
    text = view.tinted_text("x", [step], end_of_text=step.token_id).renderables[2]
    assert "italic" in str(text.spans[-1].style)


@pytest.mark.parametrize("use_cache", [True, False])
def test_summary_numbers(use_cache):
    done = RunSummary(n_new_tokens=10, stop_reason="max_new_tokens", seconds=0.5, tokens_per_s=20.0,
                      first_step_seconds=0.01, n_prompt_tokens=5, use_cache=use_cache, positions_with_cache=14,
                      positions_without_cache=95, cache_bytes=114688)
    out = render(view.summary(done, MODEL), 160)
    assert "10 new tokens" in out and "20.0 tokens/s" in out and "10.0 ms" in out
    assert "14" in out and "95" in out and "6.8×" in out and "114,688 bytes" in out


def test_every_stop_reason_has_a_sentence():
    texts = load()["generate"]
    for reason in STOP_REASONS:
        assert f"stop_{reason}" in texts
        done = RunSummary(n_new_tokens=3, stop_reason=reason, seconds=0.1, tokens_per_s=30.0,
                          first_step_seconds=0.01, n_prompt_tokens=5, use_cache=True, positions_with_cache=7,
                          positions_without_cache=18, cache_bytes=100)
        assert "Stopped" in render(view.summary(done, MODEL, ("END",)), 120)


def test_generated_line_breaks_are_marked_prompt_ones_are_not():
    logits = (0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0)  # the line break wins
    step = make_step(1, SamplingSettings(greedy=True), logits=logits)
    text = view.tinted_text("a\nb", [step]).renderables[2]
    assert text.plain == "a\nb↵\n"


def test_candidates_stay_on_one_line_at_80_columns():
    logits = (0.0,) * 7 + (9.0,)
    step = make_step(1, SAMPLED, logits=logits)
    step.sampled.candidates[0].text = "x" * 60
    lines = render(step_line(step, 80), 80).splitlines()
    assert len(lines) == 2 and len(lines[1]) <= 80
