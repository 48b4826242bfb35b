"""`tracegpt generate`: check the options, load, then stream the steps as a table or as JSON Lines.

JSON Lines (--json): one {"event": "step", ...} object per step, written and flushed as the
step is produced, then one {"event": "done", ...}. Nothing else goes to standard output.

--save FILE.npz: for every step, the recorded stages of the positions that are new at that
step (the prompt's at step 1, one token's afterwards) under "step{N}/{stage name}", e.g.
"step3/blocks.0.attn.weights" of shape (n_head, 1, context); plus "token_ids" (prompt and
generated ids) and "n_prompt_tokens".
"""

from __future__ import annotations

import dataclasses
import sys

import typer

from ..errors import UsageError
from ..texts import say
from .common import (
    check_not_the_model,
    check_outputs,
    check_writable,
    emit_json,
    loading,
    note,
    read_prompt,
    said_saved,
    save_exports,
)

MAX_SEED = 2**64 - 1


@dataclasses.dataclass
class Options:
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    greedy: bool = False
    seed: int | None = None
    stop: tuple[str, ...] = ()
    use_cache: bool = True
    layer: int | None = None
    head: int | None = None
    show_sampling: int | None = None
    interventions: list = dataclasses.field(default_factory=list)  # applied at every step (analysis.interventions)
    compare: bool = False  # also run without them, with the same seed


def check_options(opts: Options):
    """Every value that can be checked before loading the model: fail fast, in one line."""
    from ..generation import check_max_new_tokens
    from ..sampling import SamplingSettings

    settings = SamplingSettings(temperature=opts.temperature, top_k=opts.top_k, top_p=opts.top_p,
                                greedy=opts.greedy)
    settings.check()
    check_max_new_tokens(opts.max_new_tokens)
    if opts.seed is not None and not 0 <= opts.seed <= MAX_SEED:
        raise UsageError(f"--seed {opts.seed} is out of range; it must be in 0..{MAX_SEED}")
    for text in opts.stop:
        if not text:
            raise UsageError("--stop '' is empty; give the text to stop at")
    if opts.show_sampling is not None and not 1 <= opts.show_sampling <= opts.max_new_tokens:
        raise UsageError(f"--show-sampling {opts.show_sampling} is out of range; it must be a step in "
                         f"1..{opts.max_new_tokens} (--max-new-tokens)")
    if settings.is_greedy:
        unused = [flag for flag, used in (("--temperature", opts.temperature not in (0, 1)),
                                          ("--top-k", opts.top_k is not None), ("--top-p", opts.top_p != 1),
                                          ("--seed", opts.seed is not None)) if used]
        if unused:
            how = "--greedy" if opts.greedy else "--temperature 0"
            note(say("generate", "greedy_ignores", how=how, flags=", ".join(unused), n=len(unused)))
    return settings


def run(prompt: str, model: str | None, device: str, dtype: str, opts: Options, as_json: bool, save,
        width: int | None, color: bool, svg=None, html=None) -> None:
    # The prompt first: checking the options imports torch, and a prompt far too long for the
    # model should not wait for that.
    prompt = read_prompt(prompt, model)
    settings = check_options(opts)
    if save is not None:
        check_writable(save, "--save")
    check_outputs(as_json, svg, html)

    from .. import export, loader
    from ..generation import AttentionSpec, Generation, compare_runs
    from ..tracer import encode_prompt

    with loading(model):
        lm = loader.load(model, device=device, dtype=dtype)
    if opts.top_k is not None and opts.top_k > lm.config.vocab_size and not settings.is_greedy:
        note(say("generate", "top_k_cuts_nothing", top_k=opts.top_k, model=lm.name, vocab=f"{lm.config.vocab_size:,}"))
    check_not_the_model(lm, save=save, svg=svg, html=html)
    ids = encode_prompt(lm, prompt)
    attention = AttentionSpec(layer=lm.config.n_layer - 1 if opts.layer is None else opts.layer, head=opts.head)
    edits, done = [], []
    if opts.interventions:
        from ..analysis.interventions import check, describe, edit_taps, steering_directions

        checked = check(opts.interventions, lm, len(ids))
        directions = steering_directions(checked, lm)
        edits = edit_taps(checked, lm, ids, directions)
        done = [describe(iv, lm, directions) for iv in checked]
    gen = Generation(lm, ids, settings, opts.max_new_tokens, seed=opts.seed, stop_texts=opts.stop,
                     use_cache=opts.use_cache, attention=attention, record=save is not None, keep_logits=False,
                     edits=edits, list_step=opts.show_sampling)
    if gen.capped:
        print(say("generate", "capped", n_prompt=len(ids), model=lm.name, n_ctx=lm.config.n_ctx, room=gen.room,
                  asked=gen.asked), file=sys.stderr, flush=True)
    if lm.end_of_text is None:
        print(say("generate", "no_end_of_text", model=lm.name), file=sys.stderr, flush=True)

    out = JsonOutput(opts) if as_json else ViewOutput(opts, width, color, record=bool(svg or html))
    out.start(gen.info(prompt, done))
    saved: dict = {}
    steps = []
    interrupted = False
    try:
        for step in gen:
            saved.update(export.step_arrays(step))
            # Keep only what the text and the summary need; the stages are in `saved` already.
            steps.append(dataclasses.replace(step, stages={}))
            out.step(step)
    except KeyboardInterrupt:
        gen.stop_reason = "interrupted"
        interrupted = True
    if save is not None:
        said_saved(export.write_npz(save, saved | export.generation_arrays(gen.ids, len(gen.prompt_ids),
                                                                          lm.token_text)))
    comparison = None
    if opts.compare and not interrupted:  # the same run without the edits, the same seed
        plain = Generation(lm, ids, settings, opts.max_new_tokens, seed=gen.seed, stop_texts=opts.stop,
                           use_cache=opts.use_cache, keep_logits=False)
        for _ in plain:
            pass
        comparison = compare_runs(gen, plain)
    out.done(gen, prompt, steps, comparison)
    if not as_json:
        save_exports(out.console, svg, html, "tracegpt generate")
    if interrupted:
        raise typer.Exit(130)


# --- JSON ---


class JsonOutput:
    def __init__(self, opts: Options):
        self.opts = opts

    def start(self, run) -> None:
        pass

    def step(self, step) -> None:
        from ..export import step_event

        emit_json(step_event(step, with_pipeline=step.number == self.opts.show_sampling))

    def done(self, gen, prompt: str, steps, comparison=None) -> None:
        from ..export import done_event
        from ..texts import say

        wanted = self.opts.show_sampling
        if wanted is not None and wanted > len(steps):
            emit_json({"event": "notice", "message": say("generate", "pipeline_missing", step=wanted, n=len(steps))})
        emit_json(done_event(gen, prompt, comparison))


# --- the view ---


class ViewOutput:
    def __init__(self, opts: Options, width: int | None, color: bool, record: bool = False):
        from ..views import common

        self.opts = opts
        self.console = common.make_console(width=width, color=color, record=record)

    def start(self, run) -> None:
        from ..views import generate as view

        self.settings = run.settings
        self.text = run.prompt  # what each step's pass reads: the prompt and every token drawn so far
        self.table = view.StepTable(self.console.width, with_model=view.shows_model_prob(run.settings))
        self.console.print(view.header(run))
        self.console.print(self.table.header())
        self.rows_since_header = 0

    def step(self, step) -> None:
        # In a terminal the column names come back every screenful; a pipe or a file gets them once.
        lines_per_row = 1 if self.table.wide else 2
        if self.console.is_terminal and (self.rows_since_header + 1) * lines_per_row > self.console.height - 2:
            self.console.print(self.table.header())
            self.rows_since_header = 0
        self.console.print(self.table.row(step, self.text))
        self.text += step.text
        self.rows_since_header += 1

    def done(self, gen, prompt: str, steps, comparison=None) -> None:
        from ..views import generate as view

        self.console.print()
        wanted = self.opts.show_sampling
        if wanted is not None:
            if wanted <= len(steps):
                self.console.print(view.pipeline(steps[wanted - 1], self.settings))
            else:
                self.console.print(view.pipeline_missing(wanted, len(steps)))
        self.console.print(view.tinted_text(prompt, steps, end_of_text=gen.lm.end_of_text))
        if comparison is not None:
            self.console.print(view.comparison(comparison))
        self.console.print(view.summary(gen.summary(), gen.lm.describe(), self.opts.stop))
