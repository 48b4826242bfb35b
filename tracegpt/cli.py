"""The command line: typer wiring that parses options and hands them to tracegpt.commands.

Every failure leaves through `TracegptGroup.main`: one line on standard error, an exit code
of 1 (runtime), 2 (usage) or 130 (interrupted), a traceback only with --debug.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Torch's OpenMP threads spin while they wait; on a shared machine that made small forwards
# 20-80x slower. Passive waiting costs next to nothing here. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from . import __version__, stages  # noqa: E402
from .errors import Interrupted, ParameterError, TraceGPTError  # noqa: E402


def _help_as_usual() -> None:
    """typer 0.29 writes `<bool>` beside every flag, `<str>` beside values and `{prompt}` in usage lines;
    write them as command-line help usually does: flags bare, values as TEXT/N/X, PROMPT and [PROMPT]."""
    from typer import core

    def display_type_rich(self, ctx):
        if self.metavar is not None:
            return self.metavar
        if getattr(self, "is_flag", False) or self.bare_type() == "bool":
            return None
        return {"int": "N", "float": "X"}.get(self.bare_type(), "TEXT")

    def usage_name(self):
        name = (self.metavar or self.name).upper()
        return name if self.required else f"[{name}]"

    core.TyperOption.display_type_rich = display_type_rich
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # the usage line already names it
    core.TyperArgument._usage_display_name = usage_name


_help_as_usual()


def _error(message: str, code: int) -> int:
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if sys.stderr is not None:  # closed (2>&-): the exit code still tells
        print(f"error: {' '.join(lines) or 'unknown error'}", file=sys.stderr)
    return code


class TracegptGroup(TyperGroup):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        args, debug = self._take_debug(args)
        debug = debug or bool(os.environ.get("TRACEGPT_DEBUG"))
        prepare_streams()
        try:
            rv = super().main(args=args, prog_name=prog_name or "tracegpt", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except Exception as e:  # noqa: BLE001 - the one place every failure becomes one line
            if debug and not _is_usage(e):
                raise
            code = _exit_code_for(e)
        except KeyboardInterrupt:
            code = _error("interrupted", 130)
        except SystemExit:
            # typer turns a broken pipe (rich raises it too, see views.common) into exit 1 after
            # wrapping stdout in PacifyFlushWrapper; a closed reader
            # (`| head`) is not a failure of ours.
            if type(sys.stdout).__name__ == "PacifyFlushWrapper":
                code = _quiet_broken_pipe()
            else:
                raise
        if standalone_mode:
            sys.exit(code)
        return code


    def invoke(self, ctx):
        # typer would turn Ctrl-C into a bare exit 130; as an error it gets its one line, which
        # says what was left undone (files.NotSaved: "FILE not saved").
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:
            raise Interrupted(f"interrupted; {e}" if str(e) else "interrupted") from None

    def _take_debug(self, args: list[str]) -> tuple[list[str], bool]:
        """--debug where it is a flag: not after `--`, and not the value of an option such as --stop."""
        command = self.commands.get(args[0]) if args else None
        takes_value = {opt for p in getattr(command, "params", ()) if not getattr(p, "is_flag", True)
                       for opt in p.opts}
        kept, debug = [], False
        for i, arg in enumerate(args):
            if arg == "--":
                return kept + args[i:], debug
            if arg == "--debug" and not (kept and kept[-1] in takes_value):
                debug = True
                continue
            kept.append(arg)
        return kept, debug


def prepare_streams() -> None:
    """Standard streams a view can always write to, whatever the shell handed over."""
    from .views.common import ASCII_GLYPHS, writes_unicode

    if sys.stdout is None:  # closed (>&-): say so once something is printed, with exit code 1
        sys.stdout = ClosedOutput()
    elif not writes_unicode(sys.stdout) and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors=ASCII_GLYPHS)  # latin-1 or ASCII output: ␣ becomes _, not a crash


class ClosedOutput:
    """Standing in for a closed standard output: writing to it is a runtime error, not a traceback."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise TraceGPTError("standard output is closed; nothing can be printed (remove >&- or redirect to a file)")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _is_usage(e: Exception) -> bool:
    """click's (or typer's vendored click's) usage errors: they know their message and exit code."""
    return hasattr(e, "format_message") and hasattr(e, "exit_code")


def _exit_code_for(e: Exception) -> int:
    name = type(e).__name__
    if name == "NoArgsIsHelpError":
        print(e.ctx.get_help())
        return 0
    if isinstance(e, ParameterError):  # the domain names the parameter; here it is the option typed
        return _error(e.said_as(e.flag), e.exit_code)
    if isinstance(e, TraceGPTError):
        return _error(str(e), e.exit_code)
    if _is_usage(e):
        return _error(e.format_message(), e.exit_code)
    if name == "Exit" and hasattr(e, "exit_code"):
        return e.exit_code
    if name == "Abort":
        return _error("interrupted", 130)
    if isinstance(e, OSError):
        return _error(f"{e.strerror or e} (rerun with --debug for the traceback)", 1)
    return _error(f"unexpected {name}: {e} (rerun with --debug for the traceback)", 1)


def _quiet_broken_pipe() -> int:
    # The reader went away (`| head`): stop writing, and keep Python from complaining at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


app = typer.Typer(
    cls=TracegptGroup,
    help="Open up a GPT's forward pass: every stage, with real numbers and plain-language explanations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"tracegpt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Open up a GPT's forward pass: every stage, with real numbers and plain-language explanations."""


ModelOpt = typer.Option(None, "--model", "-m", envvar="TRACEGPT_MODEL", show_envvar=True,
                        help="Model to run: 'shakespeare' (embedded, the default); gpt2, gpt2-medium, ... from "
                             "the local Hugging Face cache; or a checkpoint folder or .safetensors file.")
DeviceOpt = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")
DtypeOpt = typer.Option("float32", "--dtype", help="Weights and activations: float32, bfloat16 or float16.")
def _check_width(width: int | None) -> int | None:
    from .views.common import MIN_WIDTH

    if width is not None and width < MIN_WIDTH:
        raise typer.BadParameter(f"{width} is too narrow; the views need at least {MIN_WIDTH} columns",
                                 param_hint="--width")
    return width


WidthOpt = typer.Option(None, "--width", callback=_check_width,
                        help="Render at this many columns, at least 40 (default: the terminal's, or COLUMNS).")
NoColorOpt = typer.Option(False, "--no-color", help="No colours (NO_COLOR is honoured too).")
JsonOpt = typer.Option(False, "--json", help="Write one JSON document to standard output instead of the view.")
def _use_lang(lang: str | None) -> str:
    from . import texts

    texts.use(lang or texts.default_language())
    return texts.current()


LangOpt = typer.Option(None, "--lang", callback=_use_lang, metavar="en|zh",
                       help="Language of the view: en or zh (default: TRACEGPT_LANG, else the locale's, else en).")
REPLACES = " An existing FILE is replaced, whole once the new one is written."
SvgOpt = typer.Option(None, "--svg", metavar="FILE", help="Also save the view as an SVG image to FILE." + REPLACES)
HtmlOpt = typer.Option(None, "--html", metavar="FILE", help="Also save the view as an HTML page to FILE." + REPLACES)


@app.command(epilog="Examples:\n\n  tracegpt trace \"I love\"\n\n"
                    "  tracegpt trace \"To be, or not to be\" --layers 2-3 --position 3\n\n"
                    "  tracegpt trace \"I love\" --json | jq '.next_token.top[0]'")
def trace(
    prompt: str = typer.Argument(..., help="Text to run through the model; '-' reads standard input."),
    model: str | None = ModelOpt,
    top_k: int = typer.Option(10, "--top-k", "-k", help="How many next-token candidates to show (at least 1)."),
    layers: str | None = typer.Option(
        None, "--layers", "-l", help="Blocks to record and show: all, 3, 0,2 or 1-3 (counting from 0)."),
    position: int | None = typer.Option(
        None, "--position", "-p",
        help="Token position to follow, from 0; negative counts from the end (default: the last)."),
    as_json: bool = JsonOpt,
    save: Path | None = typer.Option(
        None, "--save", metavar="FILE", help="Also write every recorded tensor to FILE.npz, keyed by stage name."
                                             + REPLACES),
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Run a prompt through the model and show every stage of the forward pass."""
    from .commands import trace as command

    command.run(prompt, model, device, dtype, top_k, layers, position, as_json, save, width, not no_color, svg, html)


@app.command(epilog="Examples:\n\n  tracegpt attn \"I love you\" --layer 3 --head 2\n\n"
                    "  tracegpt attn --layer all\n\n"
                    "  tracegpt attn \"To be, or not to be\" -l 1 --head 0 --query 5 --key 1 --svg head.svg\n\n"
                    "  tracegpt attn \"I love you\" -l 0 --head 1 --json | jq '.weights[-1]'")
def attn(
    prompt: str | None = typer.Argument(None, help="Text to run through the model; '-' reads standard input "
                                                   "(default: a built-in line of Shakespeare)."),
    model: str | None = ModelOpt,
    layer: str | None = typer.Option(None, "--layer", "-l", help="Block to look inside: 3, 0,2, 1-3 or all "
                                                                 "(counting from 0; default: the last)."),
    head: str | None = typer.Option(None, "--head", help="Head to draw as a heatmap: 2, 0,2 or all "
                                                         "(counting from 0; default: all, one line per head)."),
    query: int | None = typer.Option(None, "--query", help="With --key: work this cell by hand; the query's position, "
                                                           "from 0 (negative counts from the end)."),
    key: int | None = typer.Option(None, "--key", help="With --query: the key's position, at or before the query."),
    position: int | None = typer.Option(None, "--position", "-p", help="Token to follow in the all-heads view and "
                                                                       "where a long grid's window ends, from 0 "
                                                                       "(default: the last)."),
    scores: bool = typer.Option(False, "--scores", help="Show the scores before the softmax instead of the weights."),
    as_json: bool = JsonOpt,
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Show one attention head's routing table: weights, scores, the causal mask, one cell worked by hand."""
    from .commands import attn as command

    command.run(prompt, model, device, dtype, layer, head, query, key, position, scores, as_json, svg, html, width,
                not no_color)


@app.command(epilog="Examples:\n\n  tracegpt generate \"ROMEO:\" --greedy -n 20\n\n"
                    "  tracegpt generate \"I love\" -t 0.8 --top-k 40 --top-p 0.9 --seed 7 --show-sampling 1\n\n"
                    "  tracegpt generate \"I love\" --seed 7 --json | jq -r 'select(.event==\"step\") | .text'")
def generate(
    prompt: str = typer.Argument(..., help="Text to continue; '-' reads standard input."),
    model: str | None = ModelOpt,
    max_new_tokens: int = typer.Option(
        32, "--max-new-tokens", "-n", help="Most tokens to generate (at least 1; capped to what fits the context)."),
    temperature: float = typer.Option(
        1.0, "--temperature", "-t", help="Divide the logits by this before softmax; below 1 sharpens, 0 is greedy."),
    top_k: int | None = typer.Option(
        None, "--top-k", help="Draw only among the K most likely tokens (at least 1; default: no cut)."),
    top_p: float = typer.Option(
        1.0, "--top-p", help="Draw only among the smallest set of tokens whose probability reaches P, in (0, 1]."),
    greedy: bool = typer.Option(False, "--greedy", help="Always take the most likely token (as --temperature 0)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the random draws: same seed, same text (default: a fresh one, shown)."),
    stop: list[str] | None = typer.Option(
        None, "--stop", help="Stop once the generated text contains TEXT (repeatable); <|endoftext|> always stops "
             "(where the vocabulary has it)."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Recompute every position at every step instead of keeping keys and values."),
    layer: int | None = typer.Option(
        None, "--layer", help="Block whose attention the 'looks at' column shows (default: the last)."),
    head: int | None = typer.Option(
        None, "--head", help="Head for the 'looks at' column (default: the mean of all heads)."),
    show_sampling: int | None = typer.Option(
        None, "--show-sampling", metavar="STEP",
        help="Expand step STEP's sampling pipeline (logit, /T, top-k, top-p, prob, draw) as a table."),
    as_json: bool = typer.Option(
        False, "--json", help="Write JSON Lines: one 'step' object per token as it comes, then one 'done'."),
    ablate: list[str] | None = typer.Option(
        None, "--ablate", metavar="L.H", help="At every step, remove head H of layer L (L.H=mean, L, L.mlp: as in "
                                              "`tracegpt intervene`)."),
    cut: list[str] | None = typer.Option(
        None, "--cut", metavar="L.H:Q>K", help="At every step, delete the edge from prompt position Q to key K."),
    steer: int | None = typer.Option(
        None, "--steer", metavar="L", help="At every step, add alpha × (residual of --toward − residual of --away) "
                                           "after block L."),
    toward: str | None = typer.Option(None, "--toward", metavar="TEXT", help="With --steer: the direction's end."),
    away: str | None = typer.Option(None, "--away", metavar="TEXT", help="With --steer: the direction's start."),
    alpha: float = typer.Option(1.0, "--alpha", help="With --steer: how far to push along the direction."),
    compare: bool = typer.Option(
        False, "--compare", help="Also run without the edits, with the same seed, and say where the texts part."),
    save: Path | None = typer.Option(
        None, "--save", metavar="FILE",
        help="Also write each step's new positions' stages to FILE.npz, keyed step{N}/{stage}." + REPLACES),
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Generate text token by token: one forward pass per token, the sampling stage and the KV cache shown."""
    from .commands import generate as command
    interventions = []
    if ablate or cut or steer is not None or toward or away:  # parsing them imports torch: only when asked
        from .commands.intervene import parse as parse_interventions

        interventions = parse_interventions(ablate or [], cut or [], [], None, steer, toward, away, alpha,
                                            required=False)
    opts = command.Options(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                           greedy=greedy, seed=seed, stop=tuple(stop or ()), use_cache=not no_cache, layer=layer,
                           head=head, show_sampling=show_sampling, interventions=interventions, compare=compare)
    command.run(prompt, model, device, dtype, opts, as_json, save, width, not no_color, svg, html)


@app.command(epilog="Examples:\n\n  tracegpt lens \"To be, or not to be\"\n\n"
                    "  tracegpt lens \"My lord,\" --position 1 --svg lens.svg\n\n"
                    "  tracegpt lens \"I love\" --json | jq '.final.by_row[] | [.stage, .rank]'")
def lens(
    prompt: str = typer.Argument(..., help="Text to run through the model; '-' reads standard input."),
    model: str | None = ModelOpt,
    position: int | None = typer.Option(
        None, "--position", "-p", help="Position whose prediction to follow, from 0 (default: the last)."),
    as_json: bool = JsonOpt,
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Logit lens: what the model would predict after the embedding and after each block."""
    from .commands import lens as command

    command.run(prompt, model, device, dtype, position, as_json, svg, html, width, not no_color)


@app.command(epilog="Examples:\n\n  tracegpt explain \"I love\"\n\n"
                    "  tracegpt explain \"To be, or not to be\" --lang zh --width 100\n\n"
                    "  tracegpt explain \"I love\" --json | jq -r '.steps[] | .title'")
def explain(
    prompt: str = typer.Argument(..., help="Text to run through the model; '-' reads standard input."),
    model: str | None = ModelOpt,
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    as_json: bool = JsonOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Walk through one forward pass step by step, in plain words, each step backed by this run's numbers."""
    from .commands import explain as command

    command.run(prompt, model, device, dtype, lang, as_json, width, not no_color, svg, html)


PATCH_EXAMPLE = f"{stages.block_stage(1, 'resid_out')}[position=1]"


@app.command(epilog="Examples:\n\n  tracegpt intervene \"O Romeo, Romeo! wherefore art thou\" --cut '2.2:7>5'\n\n"
                    "  tracegpt intervene \"To be, or not to be, that is the\" --ablate 0.3 --ablate 2.mlp=mean\n\n"
                    f"  tracegpt intervene \"My lord, I love\" --patch '{PATCH_EXAMPLE}' "
                    "--from \"My lady, I love\"\n\n"
                    "  tracegpt intervene \"I love\" --steer 2 --toward \" hate\" --away \" love\" --alpha 4 --json")
def intervene(
    prompt: str = typer.Argument(..., help="Text to run through the model; '-' reads standard input."),
    model: str | None = ModelOpt,
    ablate: list[str] | None = typer.Option(
        None, "--ablate", metavar="L.H", help="Remove head H of layer L (its attn.mix set to 0; L.H=mean: to its "
                                              "mean over the prompt); L: every head of layer L; L.mlp: its FFN."),
    cut: list[str] | None = typer.Option(
        None, "--cut", metavar="L.H:Q>K", help="Delete one edge of a routing table: query Q no longer reads key K "
                                                "in head L.H (L:Q>K: in every head of layer L)."),
    patch: list[str] | None = typer.Option(
        None, "--patch", metavar="STAGE", help="Replace a stage (with an optional selection, e.g. "
                                               f"'{PATCH_EXAMPLE}') by its value in a run on --from."),
    source: str | None = typer.Option(None, "--from", metavar="PROMPT2", help="The prompt --patch takes values from."),
    steer: int | None = typer.Option(
        None, "--steer", metavar="L", help="Add alpha × (residual of --toward − residual of --away) after block L."),
    toward: str | None = typer.Option(None, "--toward", metavar="TEXT", help="With --steer: the direction's end."),
    away: str | None = typer.Option(None, "--away", metavar="TEXT", help="With --steer: the direction's start."),
    alpha: float = typer.Option(1.0, "--alpha", help="With --steer: how far to push along the direction."),
    top_k: int = typer.Option(10, "--top-k", "-k", help="How many candidates of each run to compare (at least 1)."),
    as_json: bool = JsonOpt,
    save: Path | None = typer.Option(None, "--save", metavar="FILE", help="Also write the edited run's stages to "
                                                                          "FILE.npz, keyed by stage name." + REPLACES),
    save_before: Path | None = typer.Option(None, "--save-before", metavar="FILE",
                                            help="Also write the plain run's stages to FILE.npz." + REPLACES),
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Change part of the forward pass (ablate a head, cut an edge, patch a stage, steer) and compare the next token."""
    from .commands import intervene as command

    interventions = command.parse(ablate or [], cut or [], patch or [], source, steer, toward, away, alpha)
    command.run(prompt, model, device, dtype, interventions, top_k, as_json, save, save_before, svg, html, width,
                not no_color)


@app.command(epilog="Examples:\n\n  tracegpt patch \"lord is my\" \"lady is my\"\n\n"
                    "  tracegpt patch \"lord is my\" \"lady is my\" --stage mlp.out --json | jq '.sweeps[0].values'")
def patch(
    clean: str = typer.Argument(..., help="The clean prompt: the run the patched pieces come from."),
    corrupt: str = typer.Argument(..., help="The corrupted prompt, as many tokens long: the run that is patched."),
    model: str | None = ModelOpt,
    stage: list[str] | None = typer.Option(
        None, "--stage", help="What to sweep: resid_out and heads by default; attn.out, mlp.out or resid_attn sweep "
                              "that stage position by position (repeatable)."),
    answer: str | None = typer.Option(None, "--answer", metavar="TOKEN",
                                      help="The token the clean run should predict (default: its top token)."),
    wrong: str | None = typer.Option(None, "--wrong", metavar="TOKEN",
                                     help="The token the corrupted run should predict (default: its top token)."),
    as_json: bool = JsonOpt,
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Activation patching: which positions, blocks and heads carry the difference between two prompts."""
    from .commands import patch as command

    command.run(clean, corrupt, model, device, dtype, tuple(stage or ("resid_out", "heads")), answer, wrong, as_json,
                svg, html, width, not no_color)


# --- score ---


@app.command(epilog="Examples:\n\n  tracegpt score \"But soft, what light through yonder window breaks?\"\n\n"
                    "  tracegpt score --file play.txt --summary\n\n"
                    "  tracegpt score \"To be, or not to be\" --position 3\n\n"
                    "  tracegpt score \"My lord, I love thee\" --vs ./my-gpt2\n\n"
                    "  tracegpt score \"I love thee\" --json | jq -r 'select(.event==\"token\") | .bits'")
def score(
    text: str | None = typer.Argument(None, help="Text to score; '-' reads standard input (or use --file)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Score the text of this UTF-8 file, whole."),
    model: str | None = ModelOpt,
    vs: str | None = typer.Option(
        None, "--vs", metavar="MODEL", help="Also score the text with this model and compare the two, word by word."),
    window: int | None = typer.Option(
        None, "--window", help="Tokens per forward pass, at most the context (default: the context)."),
    stride: int | None = typer.Option(
        None, "--stride", help="Tokens between the starts of two windows, 1..window (default: half the window)."),
    position: int | None = typer.Option(
        None, "--position", "-p", help="Work out one position as training sees it: its distribution and its "
                                       "cross-entropy (from 1; negative counts from the end)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="The model's top guesses kept at every position."),
    surprising: int = typer.Option(
        10, "--surprising", "-n", help="Rows in the table of the most surprising tokens (or of words, with --vs)."),
    summary_only: bool = typer.Option(False, "--summary", help="Only the summary: no tinted text, no table."),
    as_json: bool = typer.Option(
        False, "--json", help="Write JSON Lines: one 'token' object per scored token, then one 'done'."),
    save: Path | None = typer.Option(
        None, "--save", help="Also write per-token arrays (ids, probs, bits, ranks, ...) to FILE.npz."),
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Grade a text token by token: the probability the model gave to what really came, in bits of surprise."""
    from .commands import score as command

    command.run(text, file, model, vs, window, stride, position, top_k, surprising, summary_only, as_json, save,
                svg, html, lang, device, dtype, width, not no_color)


# --- neuron ---

@app.command(epilog="Examples:\n\n  tracegpt neuron 2.403\n\n"
                    "  tracegpt neuron 2.403 --prompt \"I love thee\" --svg neuron.svg\n\n"
                    "  tracegpt neuron 0.7 --json | jq '.writes.up[0]'\n\n"
                    "  tracegpt neuron --build-index --model ./my-gpt2 --text corpus.txt --out my.neurons.npz\n\n"
                    "  tracegpt neuron 5.100 --model ./my-gpt2 --index my.neurons.npz")
def neuron(
    neuron: str | None = typer.Argument(None, metavar="L.N", help="The neuron: block L, neuron N, counting from 0 "
                                                                   f"(unit N of {stages.block_stage('L', 'mlp.act')}), "
                                                                   "e.g. 2.403."),
    model: str | None = ModelOpt,
    prompt: str | None = typer.Option(
        None, "--prompt", metavar="TEXT", help="Also show its activation at every position of TEXT ('-' reads "
                                               "standard input)."),
    index: Path | None = typer.Option(
        None, "--index", metavar="FILE", help="The neuron index that says where it fires (default: the embedded "
                                              "model's own; for another model, one made by --build-index)."),
    top_k: int = typer.Option(
        10, "--top-k", "-k", help="How many tokens it pushes up, and down, to show (at least 1)."),
    build_index: bool = typer.Option(
        False, "--build-index", help="Instead, build a neuron index: run the model over a corpus, keeping each "
                                     "neuron's top contexts and its activation distribution."),
    text: Path | None = typer.Option(
        None, "--text", metavar="FILE", help="With --build-index: the UTF-8 text to scan (default, for the embedded "
                                             "model: its training text, downloaded once with pip into ./.train)."),
    out: Path | None = typer.Option(
        None, "--out", metavar="FILE", help="With --build-index: the index file to write (.npz)." + REPLACES),
    as_json: bool = JsonOpt,
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """What one FFN neuron does: the tokens it pushes, where it fires most in a corpus, its activation on a prompt."""
    from .commands import neuron as command

    if build_index:
        from .training.corpus import training_split  # the embedded model's corpus, fetched as training fetches it

        command.build(neuron, model, device, dtype, prompt, index, text, out, svg, html, as_json, training_split)
        return
    command.run(neuron, model, device, dtype, prompt, index, top_k, text, out, as_json, svg, html, width,
                not no_color)


# --- attribute and heads: what wrote a logit, what each head does ---


@app.command(epilog="Examples:\n\n  tracegpt attribute \"I love\"\n\n"
                    "  tracegpt attribute \"I love\" --token \" thee\" --vs \" you\"\n\n"
                    "  tracegpt attribute \"To be, or not to be\" --position 3 --neurons 2\n\n"
                    "  tracegpt attribute \"I love\" --json | jq '.terms | sort_by(-.value) | .[0]'")
def attribute(
    prompt: str = typer.Argument(..., help="Text to run through the model; '-' reads standard input."),
    model: str | None = ModelOpt,
    token: str | None = typer.Option(None, "--token", metavar="TEXT",
                                     help="The next token whose logit to split; one token (default: the top "
                                          "prediction)."),
    vs: str | None = typer.Option(None, "--vs", metavar="TEXT",
                                  help="Split the logit difference --token minus this token instead."),
    position: int | None = typer.Option(
        None, "--position", "-p", help="Position whose next-token logit to split, from 0 (default: the last)."),
    neurons: int | None = typer.Option(None, "--neurons", metavar="L",
                                       help="Also split block L's FFN into its neurons, the strongest listed."),
    as_json: bool = JsonOpt,
    save: Path | None = typer.Option(None, "--save", metavar="FILE",
                                     help="Also write every term, and the vectors it is read from, to FILE.npz."
                                          + REPLACES),
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Direct logit attribution: split a next-token logit into the embeddings, every head, every FFN and the biases."""
    from .commands import attribute as command

    command.run(prompt, model, device, dtype, token, vs, position, neurons, as_json, save, svg, html, width,
                not no_color)


@app.command(epilog="Examples:\n\n  tracegpt heads\n\n"
                    "  tracegpt heads --prompt \"To be, or not to be, that is the question: to be, or not to be\"\n\n"
                    "  tracegpt heads --model ./my-gpt2 --json | jq '.heads[] | select(.role == \"induction\")'")
def heads(
    model: str | None = ModelOpt,
    prompt: str | None = typer.Option(None, "--prompt", metavar="TEXT",
                                      help="Score the heads on this text instead of the probe; '-' reads standard "
                                           "input."),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe's random tokens."),
    probes: int | None = typer.Option(None, "--probes", help="How many probe sequences, run as one batch (at least 1; "
                                                            "default 8, or 4 for a model of more than 32 heads)."),
    half: int = typer.Option(50, "--half", help="Random tokens in each half of a probe sequence."),
    as_json: bool = JsonOpt,
    svg: Path | None = SvgOpt,
    html: Path | None = HtmlOpt,
    lang: str = LangOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    width: int | None = WidthOpt,
    no_color: bool = NoColorOpt,
):
    """Map every head: previous-token, first-token, self, duplicate and induction scores, each checked by ablation."""
    from .commands import heads as command

    command.run(model, device, dtype, prompt, seed, probes, half, as_json, svg, html, width, not no_color)


def main():
    app()
