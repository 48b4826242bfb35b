"""A GPT built by hand with a known circuit: a previous-token head (0.0) that feeds an induction head (1.0).

Shared by the tests of `tracegpt heads`: the embedded model has no induction head (its loss on a
repeated text is no lower the second time), so the probe's claims are checked on this one too.

Block 0, head 0 reads positions (sinusoids of five frequencies): its query is the position one
back, so it attends to the previous token and writes that token's identity into its own
subspace ("the token before me"). Block 1, head 0 matches its query (my token) against that
subspace of every key, so it attends to the token right after an earlier occurrence of its own,
and writes that token into the subspace the untied unembedding reads. Every other weight is 0,
heads 0.1 and 1.1 included (their attention is an even split, their output nothing).
"""

import math

import tiktoken
import torch

from tracegpt.loader import LoadedModel
from tracegpt.model import GPT, GPTConfig

V, START = 16, 16  # ordinary tokens 0..15, then <|endoftext|>


def induction_model() -> LoadedModel:
    """A two-block GPT with a previous-token head (0.0) feeding an induction head (1.0), built by hand."""
    n_vocab = V + 1
    tok, prev, out, pos = 0, n_vocab, 2 * n_vocab, 3 * n_vocab
    freqs = [math.pi / 2, math.pi / 4, math.pi / 8, math.pi / 16, math.pi / 64]
    d = pos + 2 * len(freqs) + 1  # 62: even, for two heads of 31
    config = GPTConfig(n_layer=2, n_head=2, d_model=d, n_ctx=40, vocab_size=n_vocab, d_mlp=4,
                       tie_embeddings=False, dropout=0.0)
    model = GPT(config).eval()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    with torch.no_grad():
        model.wte.weight[:, tok:tok + n_vocab] = torch.eye(n_vocab)
        for f, theta in enumerate(freqs):
            i = torch.arange(config.n_ctx)
            model.wpe.weight[:, pos + 2 * f] = torch.cos(theta * i)
            model.wpe.weight[:, pos + 2 * f + 1] = torch.sin(theta * i)
        for block in model.h:
            block.ln_1.weight.fill_(1.0)
            block.ln_2.weight.fill_(1.0)
        model.ln_f.weight.fill_(1.0)
        # c_attn's columns: Q in 0..d, K in d..2d, V in 2d..3d, head 0 first in each (d_head = 31 > 17).
        a0 = model.h[0].attn
        for f, theta in enumerate(freqs):  # query: the position one back; key: the position
            rows = slice(pos + 2 * f, pos + 2 * f + 2)
            back = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            a0.c_attn.weight[rows, 2 * f:2 * f + 2] = 10.0 * back
            a0.c_attn.weight[rows, d + 2 * f:d + 2 * f + 2] = torch.eye(2)
        a0.c_attn.weight[tok:tok + n_vocab, 2 * d:2 * d + n_vocab] = torch.eye(n_vocab)  # value: the token
        a0.c_proj.weight[0:n_vocab, prev:prev + n_vocab] = torch.eye(n_vocab)  # written as "the previous token"
        a1 = model.h[1].attn
        a1.c_attn.weight[tok:tok + n_vocab, 0:n_vocab] = 8.0 * torch.eye(n_vocab)  # query: my token
        a1.c_attn.weight[prev:prev + n_vocab, d:d + n_vocab] = torch.eye(n_vocab)  # key: the token before you
        a1.c_attn.weight[tok:tok + n_vocab, 2 * d:2 * d + n_vocab] = torch.eye(n_vocab)  # value: your token
        a1.c_proj.weight[0:n_vocab, out:out + n_vocab] = torch.eye(n_vocab)  # written as "the next token"
        model.lm_head.weight[:, out:out + n_vocab] = 5.0 * torch.eye(n_vocab)
    encoding = tiktoken.Encoding(name="toy-induction", pat_str=r".", special_tokens={"<|endoftext|>": START},
                                 mergeable_ranks={bytes([ord("a") + i]): i for i in range(V)})
    return LoadedModel(name="toy-induction", model=model, encoding=encoding)
