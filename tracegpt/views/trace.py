"""`tracegpt trace`: the token table, the tree of stages, the next-token table, from a ForwardSummary."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..analysis.forward import BlockSummary, ForwardSummary, Guess, HeadSource, Rest
from ..texts import say, titled
from .common import Prose, Title, bar, other_tokens, pct, quoted, weight_style

MAX_TOKEN_ROWS = 32
GUIDE = "grey50"


def _t(key: str, **values) -> str:
    return say("trace", key, **values)


def _stage(title: str, text: str, names: str) -> Text:
    """One stage on one line: its title, what happened with the numbers, its stage names in grey."""
    line = Prose(_t(title), style="bold")
    line.append("  " + text)
    line.append(f"  {names}", style=GUIDE)
    return line


def _explain(text: str) -> Text:
    return Prose(text, style="italic grey70")


def token_table(s: ForwardSummary) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column(_t("col_pos"), justify="right")
    table.add_column(_t("col_token"), overflow="fold")
    table.add_column(_t("col_id"), justify="right")
    table.add_column(_t("col_bytes"), style=GUIDE)
    n = len(s.tokens)
    shown = range(n)
    if n > MAX_TOKEN_ROWS:
        around_focus = range(max(0, s.focus - 4), min(n, s.focus + 5))
        shown = sorted(set(range(8)) | set(range(n - 8, n)) | set(around_focus))
    previous = -1
    for pos in shown:
        if pos != previous + 1:
            table.add_row("…", Text(_t("not_shown", n=pos - previous - 1), style=GUIDE), "", "")
        style = "cyan reverse" if pos == s.focus else "cyan"
        table.add_row(str(pos), Text(quoted(s.tokens[pos]), style=style), str(s.token_ids[pos]),
                      _partial_bytes(s.token_bytes[pos]))
        previous = pos
    return table


def _partial_bytes(raw: bytes) -> str:
    """Bytes, shown only for a token that holds part of a UTF-8 character."""
    try:
        raw.decode("utf-8")
        return ""
    except UnicodeDecodeError:
        return _t("part_of_char", hex=raw.hex(" "))


def block_node(s: ForwardSummary, b: BlockSummary, explain: bool) -> Tree:
    """One block; `explain` adds the general sentences, which the first block shown carries alone."""
    m = s.model
    tok = quoted(s.tokens[s.focus])
    title = Prose(_t("stage_block", layer=b.layer), style="bold bright_magenta")
    title.append("  " + _t("block_change", token=tok, delta=b.change_norm, ratio=b.change_ratio,
                           before=b.stream_in_norm))
    if explain:
        title.append("\n").append_text(_explain(_t("block")))
    node = Tree(title, guide_style=GUIDE)
    node.add(_stage("stage_ln", _t("ln1", token=tok, before=b.stream_in_std, after=b.ln1_std), "ln1"))

    attn_title = Prose(_t("stage_attn"), style="bold")
    attn_title.append("  attn.q attn.k attn.v attn.scores attn.mask attn.weights", style=GUIDE)
    if explain:
        sentences = [_t("attn"), _t("scores", formula=s.score_formula, n_masked=s.n_masked, n_head=m["n_head"])]
        if s.scaled_by_layer:
            sentences.append(_t("scores_by_layer"))
        attn_title.append("\n").append_text(_explain(_t("sentence_sep").join(sentences)))
    attn_title.append("\n").append(_t("heads", token=tok))
    attn = node.add(attn_title)
    for head in b.heads:
        attn.add(head_line(s, head))
    attn.add(Prose(_t("mix", norm=b.attn_out_norm)).append("  attn.mix attn.head_out attn.out", style=GUIDE))

    node.add(_stage("stage_add", _t("resid_attn", before=b.stream_in_norm, after=b.resid_attn_norm), "resid_attn"))
    node.add(_stage("stage_ln", _t("ln2", before=b.resid_attn_std, after=b.ln2_std), "ln2"))
    # L.N, as `tracegpt neuron` takes it
    neurons = _t("list_sep").join(_t("neuron", layer=b.layer, index=n.index, value=n.value) for n in b.top_neurons)
    ffn = _stage("stage_ffn", _t("mlp", token=tok, d_mlp=b.d_mlp, n_active=b.n_active, neurons=neurons,
                                 norm=b.mlp_out_norm), "mlp.pre mlp.act mlp.out")
    if explain and b.top_neurons:
        command = f"tracegpt neuron {b.layer}.{b.top_neurons[0].index}"
        ffn.append("\n").append_text(_explain(_t("neuron_hint", command=command)))
    node.add(ffn)
    node.add(_stage("stage_add", _t("resid_out", before=b.resid_attn_norm, after=b.resid_out_norm), "resid_out"))
    return node


def head_line(s: ForwardSummary, head: HeadSource) -> Text:
    source = f"{quoted(s.tokens[head.source])}@{head.source}"
    line = Prose(_t("head", head=head.head, pct=pct(head.weight), source=source), style=weight_style(head.weight))
    if head.second is not None:
        line.append(_t("head_rest", source=f"{quoted(s.tokens[head.second])}@{head.second}",
                       pct=pct(head.second_weight)), style=GUIDE)
    return line


def next_token_table(top: list[Guess], rest: Rest) -> Group:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column(_t("col_rank"), justify="right")
    table.add_column(_t("col_token"), style="cyan")
    table.add_column(_t("col_id"), justify="right", style=GUIDE)
    table.add_column(_t("col_logit"), justify="right")
    table.add_column(_t("col_prob"), justify="right")
    table.add_column("", no_wrap=True)
    best = top[0].prob or 1.0
    for rank, t in enumerate(top, 1):
        table.add_row(str(rank), quoted(t.text), str(t.id), f"{t.logit:.2f}", pct(t.prob),
                      Text(bar(t.prob / best, 20), style=weight_style(t.prob)))
    return Group(table, Text(" " * (len(str(len(top))) + 2) + other_tokens(rest), style=GUIDE))


def render(s: ForwardSummary) -> Group:
    """The whole view: title, tokens, the stage tree for the chosen layers, the next token."""
    m = s.model
    tok = quoted(s.tokens[s.focus])
    title = Title(lambda cells: _t("title", model=m["name"], prompt=titled(s.prompt, len(s.tokens), cells)))
    intro = _explain(_t("focus", position=s.focus, token=tok))
    tokens_title = _explain(_t("tokens", n=len(s.tokens)))

    tree = Tree(Prose(_t("model", model=m["name"], n_layer=m["n_layer"], n_head=m["n_head"],
                         d_model=m["d_model"], n_ctx=m["n_ctx"]), style="bold"), guide_style=GUIDE)
    emb = tree.add(Prose(_t("stage_embed"), style="bold").append("  embed.token embed.position embed.sum", style=GUIDE)
                   .append("\n").append_text(_explain(_t("embed", d=m["d_model"]))))
    emb.add(Prose(_t("embed_numbers", token=tok, tok=s.embed_token_norm, pos=s.embed_position_norm,
                     sum=s.embed_sum_norm)))
    for i, block in enumerate(s.blocks):
        tree.add(block_node(s, block, explain=i == 0))

    ln_f_text = (_t("ln_f", token=tok, before=s.last_stream_std, after=s.ln_f_std) if s.last_stream_std is not None
                 else _t("ln_f_short", token=tok, after=s.ln_f_std))
    tree.add(_stage("stage_ln_f", ln_f_text, "ln_f"))
    best = s.top[0]
    tree.add(_stage("stage_logits", _t("logits" if s.tied else "logits_untied", vocab=m["vocab_size"],
                                       top=quoted(best.text), logit=best.logit), "logits"))
    if s.actual is None:
        probs = _t("probs", top=quoted(best.text), pct=pct(best.prob))
    else:  # inside the prompt: what the followed position predicts, against what really comes next
        probs = _t("probs_inside", position=s.focus, top=quoted(best.text), pct=pct(best.prob),
                   actual=quoted(s.actual.guess.text), rank=f"{s.actual.rank:,}", actual_pct=pct(s.actual.guess.prob))
    nxt = tree.add(Prose(_t("stage_next"), style="bold").append("  probs", style=GUIDE).append("\n")
                   .append_text(_explain(probs)))
    nxt.add(next_token_table(s.top, s.rest))
    parts = [title, intro, Text(), tokens_title, token_table(s), Text(), tree]
    if s.actual is not None:
        parts.append(_explain(_t("not_last", position=s.focus, token=tok)))
    parts.append(_explain(_t("more", attribute="tracegpt attribute", heads="tracegpt heads")))
    return Group(*parts)
