"""`tracegpt explain`: one forward pass as a guided walk, each step's claim backed by the trace's own numbers.

    walk = build(trace, lm.token_text)
    narration = narrate(walk, lang="zh")    # the same steps with their texts filled in

A step holds numbers, not sentences: the texts (tracegpt/texts/<lang>.toml, section [explain])
have {placeholders} named like the numbers. Each number that comes straight off the trace also
names where: an expression on the trace (`blocks.2.attn.weights[0, 1, 0]`), so a reader can
check it with --json, with `tracegpt trace --save`, or in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch

from .. import stages
from ..model import next_token_probs
from ..texts import quoted, say, titled
from ..tracer import Trace
from .attention import scale_text, score_formula
from .forward import Guess, Rest, next_tokens, rest_of
from .numbers import norm as _norm
from .numbers import std as _std

TOP_K = 5  # next-token candidates shown
LIST_TOKENS = 8  # tokens spelled out in the first step; the rest are counted


@dataclass
class Step:
    id: str  # also the text key; its title is f"{id}_title"
    numbers: dict  # placeholder name -> plain int, float or str (names ending in "token" hold token texts)
    sources: dict = field(default_factory=dict)  # placeholder name -> the expression on the trace it comes from
    key: str = ""  # a variant text key, when the step's situation needs other words (one token, ...)
    candidates: list[Guess] = field(default_factory=list)  # the next-token step's top tokens, most likely first
    rest: Rest | None = None  # what the candidates leave out
    extra: tuple[str, ...] = ()  # text keys of sentences added after the text, for what only some models do
    lists: dict = field(default_factory=dict)  # placeholder -> [(text key of one item, its values), ...]

    @property
    def text_key(self) -> str:
        return self.key or self.id


@dataclass
class Walk:
    model: dict
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    steps: list[Step]
    token_bytes: list[bytes] = field(default_factory=list)


def _stage(layer: int, kind: str) -> str:
    return stages.block_stage(layer, kind)


_stream_in = stages.stream_into


def pick_head(trace: Trace, focus: int) -> tuple[int, int]:
    """The (layer, head) where the focus token leans hardest on one earlier token: the clearest routing to show."""
    if focus == 0:
        return 0, 0  # nothing earlier to route from; every head reads the token itself
    best, where = -1.0, (0, 0)
    for layer in range(trace.model["n_layer"]):
        earlier = trace[_stage(layer, "attn.weights")][:, focus, :focus].float()  # (n_head, focus)
        top = earlier.max(dim=-1).values
        head = int(top.argmax())
        if top[head].item() > best:
            best, where = top[head].item(), (layer, head)
    return where


def _one(trace: Trace, step_id: str) -> str:
    """A one-token prompt has no routing to show: those steps say so in other words."""
    return f"{step_id}_one" if trace.n_tokens == 1 else ""


# --- the steps, in the order of the forward pass ------------------------------------------------

def tokens_step(trace: Trace, focus: int) -> Step:
    shown = [("token_item", {"token": t, "id": i}) for t, i in zip(trace.token_texts[:LIST_TOKENS], trace.token_ids)]
    more = trace.n_tokens - LIST_TOKENS
    if more > 0:
        shown.append(("token_more", {"n": more}))
    numbers = {"prompt": trace.prompt, "n_tokens": trace.n_tokens, "vocab_size": trace.model["vocab_size"],
               "token": trace.token_texts[focus], "token_id": trace.token_ids[focus], "position": focus}
    return Step("tokens", numbers, {"token_id": f"tokens[{focus}]"}, key=_one(trace, "tokens"),
                lists={"token_list": shown})


def embed_step(trace: Trace, focus: int) -> Step:
    numbers = {"d_model": trace.model["d_model"], "token": trace.token_texts[focus], "position": focus,
               "tok_norm": _norm(trace["embed.token"][focus]), "pos_norm": _norm(trace["embed.position"][focus]),
               "sum_norm": _norm(trace["embed.sum"][focus])}
    sources = {"tok_norm": f"‖embed.token[{focus}]‖", "pos_norm": f"‖embed.position[{focus}]‖",
               "sum_norm": f"‖embed.sum[{focus}]‖"}
    return Step("embed", numbers, sources)


def attention_step(trace: Trace, focus: int, layer: int, head: int) -> Step:
    stage = partial(_stage, layer)
    row = trace[stage("attn.weights")][head, focus, : focus + 1].float()
    order = torch.argsort(row, descending=True).tolist()
    first = order[0]
    m = trace.model
    d_head = m["d_model"] // m["n_head"]
    scale = m["attn_scales"][layer]
    numbers = {"layer": layer, "head": head, "n_heads_total": m["n_layer"] * m["n_head"], "d_head": d_head,
               "scale": scale, "scale_text": scale_text(scale, d_head, layer),
               "score_formula": score_formula(scale, d_head, layer), "token": trace.token_texts[focus],
               "source_token": trace.token_texts[first], "source": first, "weight": row[first].item(),
               "score": trace[stage("attn.scores")][head, focus, first].item(),
               "mix_norm": _norm(trace[stage("attn.mix")][head, focus])}
    sources = {"weight": f"{stage('attn.weights')}[{head}, {focus}, {first}]",
               "score": f"{stage('attn.scores')}[{head}, {focus}, {first}]"}
    mix = {"mix_norm": f"‖{stage('attn.mix')}[{head}, {focus}]‖"}
    extra = ("scale_by_layer",) if len(set(m["attn_scales"])) > 1 else ()
    if len(order) == 1:
        return Step("attention", numbers, sources | mix, key="attention_one", extra=extra)
    second = order[1]
    numbers.update(second_token=trace.token_texts[second], second=second, weight2=row[second].item(),
                   score2=trace[stage("attn.scores")][head, focus, second].item())
    sources.update(weight2=f"{stage('attn.weights')}[{head}, {focus}, {second}]",
                   score2=f"{stage('attn.scores')}[{head}, {focus}, {second}]")
    # The runner-up is often the token itself: the texts say "keeps ... on itself" then.
    return Step("attention", numbers, sources | mix, key="attention_self" if second == focus else "", extra=extra)


def heads_step(trace: Trace, focus: int, layer: int) -> Step:
    stage = partial(_stage, layer)
    rows = trace[stage("attn.weights")][:, focus, : focus + 1].float()  # (n_head, focus + 1)
    tops, where = rows.max(dim=-1)
    sharp, flat = int(tops.argmax()), int(tops.argmin())
    m = trace.model
    numbers = {"layer": layer, "n_head": m["n_head"], "d_head": m["d_model"] // m["n_head"], "d_model": m["d_model"],
               "token": trace.token_texts[focus], "sharp_head": sharp, "sharp_weight": tops[sharp].item(),
               "sharp_token": trace.token_texts[int(where[sharp])], "flat_head": flat,
               "flat_weight": tops[flat].item(), "out_norm": _norm(trace[stage("attn.out")][focus])}
    sources = {"out_norm": f"‖{stage('attn.out')}[{focus}]‖"}
    for h in range(rows.shape[0]):  # every head's strongest edge, for the table
        numbers[f"head_{h}_weight"] = tops[h].item()
        sources[f"head_{h}_weight"] = f"{stage('attn.weights')}[{h}, {focus}, {int(where[h])}]"
    sources["sharp_weight"], sources["flat_weight"] = sources[f"head_{sharp}_weight"], sources[f"head_{flat}_weight"]
    return Step("heads", numbers, sources, key=_one(trace, "heads"))


def mask_step(trace: Trace, focus: int, layer: int) -> Step:
    n = trace.n_tokens
    mask = trace[_stage(layer, "attn.mask")]
    future = torch.stack([trace[_stage(i, "attn.weights")][:, ~mask] for i in range(trace.model["n_layer"])])
    numbers = {"n_tokens": n, "n_pairs": n * n, "n_masked": int((~mask).sum()),
               "future_weight": future.float().abs().max().item() if future.numel() else 0.0,
               "first_token": trace.token_texts[0], "token": trace.token_texts[focus], "n_seen": focus + 1,
               "first_self": trace[_stage(layer, "attn.weights")][0, 0, 0].item(), "n_layer": trace.model["n_layer"]}
    sources = {"n_masked": f"(~{_stage(layer, 'attn.mask')}).sum()",
               "future_weight": f"max |{stages.every_block('attn.weights')}[~mask]|",
               "first_self": f"{_stage(layer, 'attn.weights')}[0, 0, 0]"}
    return Step("mask", numbers, sources, key=_one(trace, "mask"))


def ffn_step(trace: Trace, focus: int, layer: int) -> Step:
    stage = partial(_stage, layer)
    act = trace[stage("mlp.act")][focus].float()
    strongest = int(act.argmax())
    numbers = {"layer": layer, "token": trace.token_texts[focus], "d_model": trace.model["d_model"],
               "d_mlp": act.numel(), "n_active": int((act > 0).sum()), "neuron": strongest,
               "neuron_value": act[strongest].item(), "mlp_norm": _norm(trace[stage("mlp.out")][focus])}
    sources = {"n_active": f"({stage('mlp.act')}[{focus}] > 0).sum()",
               "neuron_value": f"{stage('mlp.act')}[{focus}, {strongest}]",
               "mlp_norm": f"‖{stage('mlp.out')}[{focus}]‖"}
    return Step("ffn", numbers, sources)


def residual_step(trace: Trace, focus: int, layer: int) -> Step:
    stage = partial(_stage, layer)
    last = trace.model["n_layer"] - 1
    numbers = {"layer": layer, "token": trace.token_texts[focus], "last_layer": last,
               "start": _norm(trace["embed.sum"][focus]), "end": _norm(trace[_stage(last, "resid_out")][focus]),
               "before": _norm(trace[_stream_in(layer)][focus]), "attn_norm": _norm(trace[stage("attn.out")][focus]),
               "mid": _norm(trace[stage("resid_attn")][focus]), "mlp_norm": _norm(trace[stage("mlp.out")][focus]),
               "after": _norm(trace[stage("resid_out")][focus])}
    # In the order of the pass, so the table reads as the draft's size from the embedding up.
    sources = {"start": f"‖embed.sum[{focus}]‖"}
    for i in range(last + 1):
        if i == layer:
            sources.update(before=f"‖{_stream_in(layer)}[{focus}]‖", attn_norm=f"‖{stage('attn.out')}[{focus}]‖",
                           mid=f"‖{stage('resid_attn')}[{focus}]‖", mlp_norm=f"‖{stage('mlp.out')}[{focus}]‖",
                           after=f"‖{stage('resid_out')}[{focus}]‖")
        else:
            numbers[f"block_{i}_norm"] = _norm(trace[_stage(i, "resid_out")][focus])
            sources[f"block_{i}_norm"] = f"‖{_stage(i, 'resid_out')}[{focus}]‖"
    sources["end"] = f"‖{_stage(last, 'resid_out')}[{focus}]‖"
    # What each block changed: a block that learned nothing would pass its input through, 0.
    changes = []
    for i in range(last + 1):
        x_in = trace[_stream_in(i)][focus].float()
        numbers[f"block_{i}_change"] = _norm(trace[_stage(i, "resid_out")][focus].float() - x_in) / max(_norm(x_in),
                                                                                                         1e-12)
        changes.append(("residual_change", {"layer": i, "ratio": numbers[f"block_{i}_change"]}))
    return Step("residual", numbers, sources, lists={"changes": changes})


def layernorm_step(trace: Trace, focus: int, layer: int) -> Step:
    stage = partial(_stage, layer)
    x = trace[_stream_in(layer)][focus]
    numbers = {"layer": layer, "token": trace.token_texts[focus], "before_std": _std(x), "before_norm": _norm(x),
               "after_std": _std(trace[stage("ln1")][focus]), "after_norm": _norm(trace[stage("ln1")][focus]),
               "mid_std": _std(trace[stage("resid_attn")][focus]), "ln2_std": _std(trace[stage("ln2")][focus])}
    sources = {"before_std": f"std {_stream_in(layer)}[{focus}]", "before_norm": f"‖{_stream_in(layer)}[{focus}]‖",
               "after_std": f"std {stage('ln1')}[{focus}]", "after_norm": f"‖{stage('ln1')}[{focus}]‖",
               "mid_std": f"std {stage('resid_attn')}[{focus}]", "ln2_std": f"std {stage('ln2')}[{focus}]"}
    return Step("layernorm", numbers, sources)


def next_token_step(trace: Trace, token_text) -> Step:
    last = trace.n_tokens - 1
    final = _stage(trace.model["n_layer"] - 1, "resid_out")
    probs = next_token_probs(trace["logits"][last])
    numbers = {"token": trace.token_texts[last], "position": last, "vocab_size": probs.numel(),
               "before_std": _std(trace[final][last]), "after_std": _std(trace["ln_f"][last]),
               "prob_sum": probs.sum().item()}
    sources = {"before_std": f"std {final}[{last}]", "after_std": f"std ln_f[{last}]",
               "prob_sum": f"softmax(logits[{last}]).sum()"}
    candidates = next_tokens(trace, last, TOP_K, token_text)
    for rank, guess in enumerate(candidates, 1):
        numbers.update({f"top{rank}_token": guess.text, f"top{rank}_id": guess.id, f"top{rank}_prob": guess.prob,
                        f"top{rank}_logit": guess.logit})
        sources[f"top{rank}_prob"] = f"softmax(logits[{last}])[{guess.id}]"
        sources[f"top{rank}_logit"] = f"logits[{last}, {guess.id}]"
    key = "" if trace.model["tie_embeddings"] else "next_token_untied"
    return Step("next_token", numbers, sources, key=key, candidates=candidates, rest=rest_of(candidates, probs.numel()))


def generation_step(trace: Trace) -> Step:
    m = trace.model
    n = trace.n_tokens
    more = range(n + 1, m["n_ctx"] + 1)  # the passes that would fill the context, one token each
    numbers = {"n_tokens": n, "n_next": n + 1, "n_layer": m["n_layer"], "d_model": m["d_model"],
               "kv_numbers": 2 * m["n_layer"] * m["d_model"], "n_ctx": m["n_ctx"], "n_more": len(more),
               "positions_without": sum(more), "positions_with": len(more)}
    return Step("generation", numbers)


def computed_stages(trace: Trace) -> list[str]:
    """The stages the pass computed, in its order: all but its inputs (the token ids and the causal masks)
    and the stages recorded only on reading (attn.head_out splits attn.out; it adds no numbers of its own)."""
    return [name for name in trace.names()
            if stages.kind(name) not in ("tokens", "attn.mask") and not stages.on_reading_only(name)]


def no_hidden_step(trace: Trace) -> Step:
    names = computed_stages(trace)
    numbers = {"n_numbers": sum(trace[name].numel() for name in names), "n_stages": len(names),
               "first_stage": names[0], "last_stage": names[-1], "n_tokens": trace.n_tokens,
               "n_next": trace.n_tokens + 1}
    return Step("no_hidden", numbers, {"n_numbers": f"Σ numel({names[0]} … {names[-1]})"})


def build(trace: Trace, token_text) -> Walk:
    """The walk through a full trace (every stage, every layer), following the last token."""
    focus = trace.n_tokens - 1
    layer, head = pick_head(trace, focus)
    steps = [tokens_step(trace, focus), embed_step(trace, focus), attention_step(trace, focus, layer, head),
             heads_step(trace, focus, layer), mask_step(trace, focus, layer), ffn_step(trace, focus, layer),
             residual_step(trace, focus, layer), layernorm_step(trace, focus, layer),
             next_token_step(trace, token_text), generation_step(trace), no_hidden_step(trace)]
    return Walk(model=trace.model, prompt=trace.prompt, tokens=list(trace.token_texts),
                token_ids=list(trace.token_ids), steps=steps, token_bytes=list(trace.token_bytes))


# --- texts ------------------------------------------------------------------------------------

@dataclass
class NarratedStep:
    """A step with its title and text in one language, beside the numbers that fill them."""

    id: str
    title: str
    text: str
    numbers: dict
    sources: dict
    candidates: list[Guess]
    rest: Rest | None


@dataclass
class Narration:
    model: dict
    prompt: str
    lang: str
    title: str
    intro: str
    tokens: list[str]
    token_ids: list[int]
    steps: list[NarratedStep]
    token_bytes: list[bytes] = field(default_factory=list)


def fill(step: Step, lang: str) -> tuple[str, str]:
    """The step's title and text in a language, with its numbers in place (token texts quoted)."""
    def shown(numbers: dict) -> dict:
        return {k: quoted(v) if isinstance(v, str) and (k.endswith("token") or k == "prompt") else v
                for k, v in numbers.items()}

    values = shown(step.numbers)
    for name, items in step.lists.items():
        values[name] = say("explain", "list_sep", lang).join(say("explain", key, lang, **shown(each))
                                                              for key, each in items)
    text = say("explain", "sentence_sep", lang).join(
        say("explain", key, lang, **values) for key in (step.text_key, *step.extra))
    return say("explain", f"{step.id}_title", lang), text


def narrate(walk: Walk, lang: str = "en") -> Narration:
    """The walk told in a language: what the view prints and `--json` holds."""
    steps = [NarratedStep(step.id, *fill(step, lang), step.numbers, step.sources, step.candidates, step.rest)
             for step in walk.steps]
    return Narration(model=walk.model, prompt=walk.prompt, lang=lang,
                     title=say("explain", "title", lang, model=walk.model["name"],
                               prompt=titled(walk.prompt, len(walk.tokens))),
                     intro=say("explain", "intro", lang), tokens=walk.tokens, token_ids=walk.token_ids, steps=steps,
                     token_bytes=walk.token_bytes)
