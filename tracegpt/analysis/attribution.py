"""Direct logit attribution: one token's logit, split into one term per part of the model that wrote it.

    a = attribute(lm, "I love")                   # the top next token, at the last position
    [(t.kind, t.layer, t.head, t.value) for t in a.terms]
    a.total, a.logit                              # the terms' sum and the model's own logit: equal

The residual stream that enters the final LayerNorm is a sum: the token embedding, the position
embedding, and every block's attention and MLP updates; an attention update is itself each
head's output (stage attn.head_out) plus the output projection's bias. The final LayerNorm
centres that sum (linear), divides it by one number σ per position, scales it by γ and adds β;
the unembedding is linear. With σ held at its value in this run, the logit of token t is

    logit_t = Σ_parts (part − mean(part)) / σ · (γ ⊙ W_U[t])  +  β · W_U[t]

so each part's term is its vector's dot product with one readout direction, and β · W_U[t] is
the LayerNorm bias's term. For a logit difference (t against s), W_U[t] − W_U[s] takes W_U[t]'s
place. Every term is computed in float64 from the recorded float32 stages; they add up to the
model's logit to float32 rounding.

The one approximation is σ: frozen at this run's value, the split is exact for this run, and
says nothing of how σ (and so every share) would move for another input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .. import stages
from ..errors import ParameterError
from ..loader import LoadedModel
from ..model import head_outputs, next_token_probs
from ..tracer import Trace, check_position, encode_prompt, trace_ids
from .patching import readout_direction, token_id

TOP_NEURONS = 5  # the view lists this many neurons pushing each way
KINDS = ("token_embedding", "position_embedding", "head", "attn_bias", "mlp", "ln_f_bias")
# What attribution reads from a trace (mlp.act only to split an MLP into its neurons).
STAGES = ("embed.token", "embed.position", "attn.mix", "mlp.out", "resid_out", "logits")


@dataclass
class Term:
    """One part's share of the logit: a token or position embedding, a head, an attention output
    bias, an MLP, or the final LayerNorm's bias."""

    kind: str  # one of KINDS
    layer: int | None
    head: int | None
    value: float


@dataclass
class Neuron:
    index: int
    activation: float  # after the nonlinearity (mlp.act)
    weight: float  # its output row · the readout direction: the logit it adds per unit of activation
    value: float  # activation × weight


@dataclass
class NeuronSplit:
    """One MLP's term, split: each neuron's activation × its output row, plus the output bias."""

    layer: int
    mlp: float  # the MLP's whole term (from mlp.out)
    bias: float  # the output projection's bias
    neurons: list[Neuron]  # every neuron, by index

    @property
    def total(self) -> float:
        return math.fsum([self.bias, *(n.value for n in self.neurons)])

    def top(self, k: int = TOP_NEURONS) -> tuple[list[Neuron], list[Neuron]]:
        """The k neurons pushing the logit up most, and the k pushing it down most (strongest first)."""
        order = sorted(self.neurons, key=lambda n: n.value)
        up = [n for n in reversed(order) if n.value > 0][:k]
        down = [n for n in order if n.value < 0][:k]
        return up, down


@dataclass
class Attribution:
    model: dict
    prompt: str
    tokens: list[str]
    token_ids: list[int]
    position: int  # the position whose next-token logit is split
    target: int
    target_text: str
    vs: int | None  # with a second token: the logit difference target − vs is split
    vs_text: str | None
    logit: float  # the model's own logit (or difference), as it computed it: what the terms add up to
    target_logit: float  # the target's own logit
    vs_logit: float | None
    sigma: float  # the final LayerNorm's divisor at this position, held fixed
    prob: float  # the target's probability
    rank: int  # its rank among all next tokens, 1 = the top
    vs_prob: float | None
    vs_rank: int | None
    terms: list[Term]
    readout: list[float] = field(repr=False)  # the direction each part is read along: (γ ⊙ u − mean) / σ
    vectors: list[list[float]] = field(repr=False)  # each term's vector at the position, in the order of terms (not β)
    neurons: NeuronSplit | None = None

    @property
    def total(self) -> float:
        return math.fsum(t.value for t in self.terms)

    def heads(self) -> list[list[float]]:
        """The head terms as a layer × head grid."""
        n_layer, n_head = self.model["n_layer"], self.model["n_head"]
        grid = [[0.0] * n_head for _ in range(n_layer)]
        for t in self.terms:
            if t.kind == "head":
                grid[t.layer][t.head] = t.value
        return grid

    def by_kind(self, kind: str) -> list[Term]:
        return [t for t in self.terms if t.kind == kind]


def attribution(lm: LoadedModel, trace: Trace, position: int, target: int, vs: int | None = None,
                neurons: int | None = None) -> Attribution:
    """Split the logit of `target` (minus that of `vs`) after `position` into one term per part.

    The trace must hold STAGES (and mlp.act of block `neurons` to split that MLP).
    """
    model, c = lm.model, lm.config
    u = readout_direction(lm, target, vs).cpu()
    ln_f = model.ln_f
    gamma, beta = ln_f.weight.detach().double().cpu(), ln_f.bias.detach().double().cpu()
    final = trace[stages.residual_stream(c.n_layer)[-1]][position].double()
    sigma = math.sqrt(final.var(correction=0).item() + ln_f.eps)
    g = gamma * u
    readout = (g - g.mean()) / sigma  # (x - mean x) · g / σ = x · (g - mean g) / σ

    labels: list[tuple[str, int | None, int | None]] = []
    vectors: list[torch.Tensor] = []

    def part(kind: str, vector: torch.Tensor, layer: int | None = None, head: int | None = None):
        labels.append((kind, layer, head))
        vectors.append(vector.double().cpu())

    part("token_embedding", trace["embed.token"][position])
    part("position_embedding", trace["embed.position"][position])
    for layer in range(c.n_layer):
        attn = model.h[layer].attn
        mix = trace[stages.block_stage(layer, "attn.mix")][:, position : position + 1].double()  # (H, 1, d_head)
        for head, vector in enumerate(head_outputs(mix, attn.c_proj.weight.detach().double().cpu())[:, 0]):
            part("head", vector, layer, head)
        part("attn_bias", attn.c_proj.bias.detach(), layer)
        part("mlp", trace[stages.block_stage(layer, "mlp.out")][position], layer)
    stacked = torch.stack(vectors)  # (parts, d_model)
    values = (stacked @ readout).tolist()
    terms = [Term(kind, layer, head, v) for (kind, layer, head), v in zip(labels, values)]
    terms.append(Term("ln_f_bias", None, None, (beta * u).sum().item()))  # not divided by σ: added after it

    logits = trace["logits"][position].float()
    probs = next_token_probs(logits)
    rank = ranks_of(probs)
    own, other = logits[target].item(), None if vs is None else logits[vs].item()
    real = own - (other if other is not None else 0.0)
    return Attribution(
        model=trace.model, prompt=trace.prompt, tokens=list(trace.token_texts), token_ids=list(trace.token_ids),
        position=position, target=target, target_text=lm.token_text(target), vs=vs,
        vs_text=None if vs is None else lm.token_text(vs), logit=real, target_logit=own, vs_logit=other,
        sigma=sigma, prob=probs[target].item(), rank=rank(target), vs_prob=None if vs is None else probs[vs].item(),
        vs_rank=None if vs is None else rank(vs), terms=terms, readout=readout.tolist(), vectors=stacked.tolist(),
        neurons=None if neurons is None else neuron_split(lm, trace, position, neurons, readout,
                                                          terms_of(terms, "mlp", neurons)))


def terms_of(terms: list[Term], kind: str, layer: int) -> float:
    return next(t.value for t in terms if t.kind == kind and t.layer == layer)


def ranks_of(probs: torch.Tensor):
    def rank(token: int) -> int:
        return int((probs > probs[token]).sum().item()) + 1

    return rank


def neuron_split(lm: LoadedModel, trace: Trace, position: int, layer: int, readout: torch.Tensor,
                 mlp_term: float) -> NeuronSplit:
    """MLP `layer`'s term as activation × (output row · readout) per neuron, plus the output bias's share."""
    proj = lm.model.h[layer].mlp.c_proj
    act = trace[stages.block_stage(layer, "mlp.act")][position].double()
    weights = proj.weight.detach().double().cpu() @ readout  # (d_mlp,): each neuron's row · readout
    values = act * weights
    return NeuronSplit(layer=layer, mlp=mlp_term, bias=(proj.bias.detach().double().cpu() @ readout).item(),
                       neurons=[Neuron(i, a, w, v) for i, (a, w, v) in
                                enumerate(zip(act.tolist(), weights.tolist(), values.tolist()))])


def check_neurons_layer(layer: int | None, lm: LoadedModel) -> int | None:
    n = lm.config.n_layer
    if layer is not None and not 0 <= layer < n:
        raise ParameterError("neurons", f"{layer} does not exist; {lm.name} has layers 0..{n - 1} (counting from 0), "
                                        f"one FFN each")
    return layer


def attribute(lm: LoadedModel, prompt: str, token: str | None = None, vs: str | None = None,
              position: int | None = None, neurons: int | None = None) -> Attribution:
    """Trace `prompt` and split the logit of `token` (default: the top prediction) after `position`
    (default: the last), or its difference with `vs`; `neurons` splits that block's MLP too."""
    ids = encode_prompt(lm, prompt)
    focus = check_position(len(ids), position)
    check_neurons_layer(neurons, lm)
    target = token_id(lm, token, "token") if token is not None else None
    other = token_id(lm, vs, "vs") if vs is not None else None
    kept = [*STAGES] + ([stages.block_stage(neurons, "mlp.act")] if neurons is not None else [])
    trace = trace_ids(lm, ids, prompt, stages=kept)
    if target is None:
        target = int(trace["logits"][focus].argmax())
    if other == target:
        said = "the same token as --token" if token is not None else "the top prediction (the default --token)"
        raise ParameterError("vs", f"{vs!r} is {said}; compare it with another token")
    return attribution(lm, trace, focus, target, other, neurons)
