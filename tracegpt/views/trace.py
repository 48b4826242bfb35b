"""`tracegpt trace`: the token table, the tree of stages, the next-token table."""

from __future__ import annotations

import torch
from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..texts import say
from ..tracer import Trace
from .common import bar, pct, quoted, weight_style

MAX_TOKEN_ROWS = 32
GUIDE = "grey50"


def _t(key: str, **values) -> str:
    return say("trace", key, **values)


def _stage(title: str, text: str, names: str) -> Text:
    """One stage on one line: its title, what happened with the numbers, its stage names in grey."""
    line = Text(title, style="bold")
    line.append("  " + text)
    line.append(f"  {names}", style=GUIDE)
    return line


def _explain(text: str) -> Text:
    return Text(text, style="italic grey70")


def _std(t: torch.Tensor) -> float:
    return t.float().std().item()


def _norm(t: torch.Tensor) -> float:
    return t.float().norm().item()


def token_table(trace: Trace, focus: int) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("pos", justify="right")
    table.add_column("token", overflow="fold")
    table.add_column("id", justify="right")
    table.add_column("bytes", style=GUIDE)
    n = trace.n_tokens
    shown = range(n)
    if n > MAX_TOKEN_ROWS:
        around_focus = range(max(0, focus - 4), min(n, focus + 5))
        shown = sorted(set(range(8)) | set(range(n - 8, n)) | set(around_focus))
    previous = -1
    for pos in shown:
        if pos != previous + 1:
            table.add_row("…", Text(f"{pos - previous - 1} tokens not shown", style=GUIDE), "", "")
        style = "cyan reverse" if pos == focus else "cyan"
        table.add_row(str(pos), Text(quoted(trace.token_texts[pos]), style=style), str(trace.token_ids[pos]),
                      _partial_bytes(trace.token_bytes[pos]))
        previous = pos
    return table


def _partial_bytes(raw: bytes) -> str:
    """Bytes, shown only for a token that holds part of a UTF-8 character."""
    try:
        raw.decode("utf-8")
        return ""
    except UnicodeDecodeError:
        return raw.hex(" ") + " (part of a character)"


def block_node(trace: Trace, layer: int, focus: int, explain: bool) -> Tree:
    """One block; `explain` adds the general sentences, which the first block shown carries alone."""
    p = f"blocks.{layer}."
    m = trace.model
    tok = quoted(trace.token_texts[focus])
    title = Text(f"Block {layer}", style="bold magenta")
    if explain:
        title.append("  ").append_text(_explain(_t("block")))
    node = Tree(title, guide_style=GUIDE)

    resid_attn = trace[p + "resid_attn"][focus]
    attn_out = trace[p + "attn.out"][focus]
    x_in = resid_attn - attn_out  # the stream entering the block, recovered exactly
    node.add(_stage("LayerNorm", _t("ln1", token=tok, before=_std(x_in), after=_std(trace[p + "ln1"][focus])), "ln1"))

    attn_title = Text("Attention", style="bold")
    attn_title.append("  attn.q attn.k attn.v attn.scores attn.mask attn.weights", style=GUIDE)
    if explain:
        n = trace.n_tokens
        attn_title.append("\n").append_text(_explain(_t("attn") + " " + _t(
            "scores", d_head=m["d_model"] // m["n_head"], n_masked=n * (n - 1) // 2, n_head=m["n_head"])))
    attn_title.append("\n").append(_t("heads", token=tok))
    attn = node.add(attn_title)
    weights = trace[p + "attn.weights"][:, focus, :]  # (n_head, T): the focus row of each head
    for h in range(weights.shape[0]):
        attn.add(head_line(trace, h, weights[h], focus))
    attn.add(Text(_t("mix", norm=_norm(attn_out))).append("  attn.mix attn.out", style=GUIDE))

    node.add(_stage("Add", _t("resid_attn", before=_norm(x_in), after=_norm(resid_attn)), "resid_attn"))
    node.add(_stage("LayerNorm", _t("ln2", before=_std(resid_attn), after=_std(trace[p + "ln2"][focus])), "ln2"))
    act = trace[p + "mlp.act"][focus].float()
    top = torch.topk(act, min(3, act.numel()))
    neurons = ", ".join(f"#{int(i)} ({v:.2f})" for v, i in zip(top.values.tolist(), top.indices))
    node.add(_stage("FFN", _t("mlp", token=tok, d_mlp=act.numel(), n_active=int((act > 0).sum()), neurons=neurons,
                               norm=_norm(trace[p + "mlp.out"][focus])), "mlp.pre mlp.act mlp.out"))
    resid_out = trace[p + "resid_out"][focus]
    node.add(_stage("Add", _t("resid_out", before=_norm(resid_attn), after=_norm(resid_out)), "resid_out"))
    return node


def head_line(trace: Trace, head: int, row: torch.Tensor, focus: int) -> Text:
    order = torch.argsort(row[: focus + 1].float(), descending=True).tolist()
    best = order[0]
    weight = row[best].item()
    line = Text(_t("head", head=head, pct=pct(weight), source=f"{quoted(trace.token_texts[best])}@{best}"),
                style=weight_style(weight))
    if len(order) > 1:
        second = order[1]
        line.append(", " + _t("head_rest", source=f"{quoted(trace.token_texts[second])}@{second}",
                              pct=pct(row[second].item())), style=GUIDE)
    return line


def next_token_table(top: list[dict]) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("token", style="cyan")
    table.add_column("id", justify="right", style=GUIDE)
    table.add_column("logit", justify="right")
    table.add_column("prob", justify="right")
    table.add_column("", no_wrap=True)
    best = top[0]["prob"] or 1.0
    for rank, t in enumerate(top, 1):
        table.add_row(str(rank), quoted(t["text"]), str(t["id"]), f"{t['logit']:.2f}", pct(t["prob"]),
                      Text(bar(t["prob"] / best, 20), style=weight_style(t["prob"])))
    return table


def render(trace: Trace, focus: int, top: list[dict], layers: list[int] | None = None) -> Group:
    """The whole view: title, tokens, the stage tree for the chosen layers, the next token."""
    m = trace.model
    tok = quoted(trace.token_texts[focus])
    title = Text(_t("title", model=m["name"], prompt=quoted(trace.prompt)), style="bold underline")
    intro = _explain(_t("focus", position=focus, token=tok))
    tokens_title = _explain(_t("tokens", n=trace.n_tokens))

    tree = Tree(Text(_t("model", model=m["name"], n_layer=m["n_layer"], n_head=m["n_head"],
                        d_model=m["d_model"], n_ctx=m["n_ctx"]), style="bold"), guide_style=GUIDE)
    emb = tree.add(Text("Embedding", style="bold").append("  embed.token embed.position embed.sum", style=GUIDE)
                   .append("\n").append_text(_explain(_t("embed", d=m["d_model"]))))
    emb.add(Text(_t("embed_numbers", token=tok, tok=_norm(trace["embed.token"][focus]),
                    pos=_norm(trace["embed.position"][focus]), sum=_norm(trace["embed.sum"][focus]))))
    for i, layer in enumerate(layers if layers is not None else trace.layers()):
        tree.add(block_node(trace, layer, focus, explain=i == 0))

    last_resid = f"blocks.{m['n_layer'] - 1}.resid_out"
    after = _std(trace["ln_f"][focus])
    ln_f_text = (_t("ln_f", token=tok, before=_std(trace[last_resid][focus]), after=after) if last_resid in trace
                 else _t("ln_f_short", token=tok, after=after))
    tree.add(_stage("Final LayerNorm", ln_f_text, "ln_f"))
    tree.add(_stage("Logits", _t("logits", vocab=m["vocab_size"], top=quoted(top[0]["text"]), logit=top[0]["logit"]),
                    "logits"))
    nxt = tree.add(Text("Next token", style="bold").append("  probs", style=GUIDE).append("\n")
                   .append_text(_explain(_t("probs", top=quoted(top[0]["text"]), pct=pct(top[0]["prob"])))))
    nxt.add(next_token_table(top))
    parts = [title, intro, Text(), tokens_title, token_table(trace, focus), Text(), tree]
    if focus != trace.n_tokens - 1:
        parts.append(_explain(_t("not_last", position=focus, token=tok)))
    return Group(*parts)
