"""A tiny model with one ``patternc.attention`` block trains, eagerly and under
``torch.compile(fullgraph=True)`` (Triton's interpreter on the CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import patternc

# torch.compile's own imports warn about torch.jit deprecations; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VOCAB, DIM, HEADS, KV_HEADS, N = 16, 32, 4, 2, 24
HEAD_DIM = DIM // HEADS
PATTERN = "band(4) | global([0])"


class TinyModel(nn.Module):
    """Embedding, one attention block (grouped-query, the pattern's mask), a token head."""

    def __init__(self) -> None:
        super().__init__()
        self.pattern = patternc.pattern(PATTERN)
        self.emb = nn.Embedding(VOCAB, DIM)
        self.q = nn.Linear(DIM, DIM)
        self.kv = nn.Linear(DIM, 2 * KV_HEADS * HEAD_DIM)
        self.o = nn.Linear(DIM, DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        B, n, _ = h.shape
        q = self.q(h).view(B, n, HEADS, HEAD_DIM).transpose(1, 2)
        k, v = self.kv(h).view(B, n, 2, KV_HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
        a = patternc.attention(q, k, v, self.pattern)
        h = h + self.o(a.transpose(1, 2).reshape(B, n, DIM))
        return self.head(h)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    # predict the token two places back: needs attention within the band
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (4, N), generator=g)
    return x, torch.roll(x, 2, dims=1)


def train(model: nn.Module, step_fn, steps: int) -> list[float]:  # type: ignore[no-untyped-def]
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    x, y = batch()
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(step_fn(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_tiny_model_trains_eagerly() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    losses = train(model, model, 8)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


def test_tiny_model_compiles_fullgraph_and_trains() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):  # type: ignore[no-untyped-def]
        from torch._inductor.compile_fx import compile_fx

        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    compiled = torch.compile(model, fullgraph=True, backend=backend)
    x, _ = batch()
    torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    # one graph holding the custom op: the attention did not break it
    assert len(graphs) == 1
    assert "patternc.attention_fwd" in str(graphs[0].graph)
    losses = train(model, compiled, 4)
    assert losses[-1] < 0.9 * losses[0], losses
