"""The sequence generator for text (maths 1.3): a small autoregressive attention decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tkam.config import GeneratorConfig
from tkam.generator.init import default_init_

__all__ = ["SequenceGenerator"]


class SequenceGenerator(nn.Module):
    """``h (B, Q) -> logits (B, n_v, L)``.

    ``e_1 = GELU(LN_1(W_in h))``; for ``t = 2..L`` the current positions ``E = (e_1..e_{t-1})``
    attend to each other (``softmax(q k^T) v``, no scaling and no mask, as in the reference),
    ``E' = W_ff(E + A)`` and the new position is ``GELU(LN_2(E'_{t-1}))``, appended to the
    unchanged previous positions. A final linear map gives vocabulary logits at every position.

    Args:
        config: the generator section (``widths[0]`` = Q, ``d_model``).
        data_shape: ``(n_v, L)``: one-hot vocabulary size and sequence length.
        rng: random stream for the initialisation.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        data_shape: tuple[int, ...],
        rng: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(data_shape) != 2:
            raise ValueError(
                f"the sequence generator needs data of shape (n_v, L), got {data_shape}"
            )
        self.image_shape = tuple(data_shape)
        vocab, self.length = data_shape
        d, latent = config.d_model, config.widths[0]
        self.embed = nn.Linear(latent, d)
        self.norm_in = nn.LayerNorm(d, eps=1e-5)
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.feed_forward = nn.Linear(d, d)
        self.norm_step = nn.LayerNorm(d, eps=1e-5)
        self.output = nn.Linear(d, vocab)
        if rng is not None:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    default_init_(module, rng)

    @property
    def input_width(self) -> int:
        return self.embed.in_features

    def forward(self, h: Tensor) -> Tensor:
        """``(B, Q) -> (B, n_v, L)`` logits."""
        positions = [F.gelu(self.norm_in(self.embed(h)))]  # e_1: (B, d)
        for _ in range(1, self.length):
            e = torch.stack(positions, dim=1)  # (B, t-1, d)
            attention = torch.softmax(self.query(e) @ self.key(e).transpose(1, 2), dim=-1)
            mixed = self.feed_forward(e + attention @ self.value(e))
            positions.append(F.gelu(self.norm_step(mixed[:, -1])))
        return self.output(torch.stack(positions, dim=1)).transpose(1, 2)

    def update_grid(self, h: Tensor) -> None:
        """Sequence generators have no grids (maths 2.6)."""
