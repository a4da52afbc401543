"""Small models for optimizer comparisons: a digits CNN, a digits MLP, a char transformer.

Shared by the SMMF benchmark (state bytes and step time) and driver (accuracy and loss
curves):

- :func:`build_digits_cnn`: two 3x3 convolutions (16 and 32 channels, ReLU), 2x2 average
  pooling and a linear head on scikit-learn's 8 x 8 digits given as rows of 64 pixels
  (9,930 parameters; its 4-D convolution kernels exercise SMMF's square-matricization);
- :func:`build_digits_mlp`: 64-128-64-10 with ReLU (17,226 parameters);
- :func:`build_char_transformer`: token embedding, learned positions, a causal
  ``torch.nn.TransformerEncoder`` (post-norm, no dropout) and a linear head
  predicting the next character (114,400 parameters with the defaults, 96 tokens and a
  context of 32), configured by :class:`CharTransformerParams`.

Each builder takes ``seed``: ``None`` draws the initial weights from torch's global generator
(in the order the layers are created), an integer from a generator seeded with it (the
global state is left untouched).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tensorsim.config import ConfigError, Params, param

__all__ = [
    "CharTransformer",
    "CharTransformerParams",
    "build_char_transformer",
    "build_digits_cnn",
    "build_digits_mlp",
]

logger = logging.getLogger(__name__)


def _check_positive(**values: int) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label}: expected a positive integer, got {value!r}")


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's global generator with ``seed`` inside the context (None: leave it)."""
    if seed is None:
        yield
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer or None, got {seed!r}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def build_digits_cnn(*, seed: int | None = None) -> torch.nn.Sequential:
    """The digits CNN: ``(batch, 64)`` pixel rows -> 10 logits.

    Layers: unflatten to ``1 x 8 x 8``, ``Conv2d(1, 16, 3, padding=1)``, ReLU,
    ``Conv2d(16, 32, 3, padding=1)``, ReLU, 2x2 average pooling, flatten,
    ``Linear(512, 10)``.

    Parameters
    ----------
    seed
        Seed of the initial weights (None: torch's global generator).

    Returns
    -------
    torch.nn.Sequential
    """
    with _seeded(seed):
        return torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 8, 8)),
            torch.nn.Conv2d(1, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AvgPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * 4 * 4, 10),
        )


def build_digits_mlp(*, seed: int | None = None) -> torch.nn.Sequential:
    """The digits MLP: ``Linear(64, 128)``, ReLU, ``Linear(128, 64)``, ReLU, ``Linear(64, 10)``.

    Parameters
    ----------
    seed
        Seed of the initial weights (None: torch's global generator).

    Returns
    -------
    torch.nn.Sequential
    """
    with _seeded(seed):
        return torch.nn.Sequential(
            torch.nn.Linear(64, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        )


@dataclass(frozen=True)
class CharTransformerParams(Params):
    """The character transformer of :func:`build_char_transformer`.

    Attributes
    ----------
    width, layers, heads
        Model width (a multiple of ``heads``), encoder layers, attention heads.
    """

    width: int = param(64, "model width", ge=1)
    layers: int = param(2, "encoder layers", ge=1)
    heads: int = param(4, "attention heads", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width % self.heads:
            raise ConfigError(
                f"config key 'width': expected a multiple of heads={self.heads}, got {self.width}"
            )


class CharTransformer(torch.nn.Module):
    """Embedding, learned positions, a causal ``TransformerEncoder``, a linear head.

    Built by :func:`build_char_transformer` (which checks the arguments and seeds it).
    """

    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.pos = torch.nn.Parameter(0.02 * torch.randn(context, width))
        layer = torch.nn.TransformerEncoderLayer(
            width, nhead=heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, vocab)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(context)
        self.register_buffer("mask", mask)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(batch, length, vocab)`` of tokens ``(batch, length)``."""
        n = tokens.shape[-1]
        h = self.embed(tokens) + self.pos[:n]
        return self.head(self.encoder(h, mask=self.mask[:n, :n], is_causal=True))


def build_char_transformer(
    vocab: int,
    context: int,
    *,
    width: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int | None = None,
) -> torch.nn.Module:
    """A tiny causal character transformer: tokens ``(batch, n <= context)`` -> logits.

    Token embedding plus learned positions (``0.02 N(0, 1)``), ``layers`` post-norm
    ``torch.nn.TransformerEncoderLayer`` blocks (``heads`` heads, feed-forward ``4 width``,
    no dropout) under a causal mask, and a linear head to ``vocab`` logits.

    Parameters
    ----------
    vocab
        Number of tokens.
    context
        Longest input sequence.
    width, layers, heads
        Model width (a multiple of ``heads``), blocks and attention heads.
    seed
        Seed of the initial weights (None: torch's global generator).

    Returns
    -------
    torch.nn.Module
    """
    _check_positive(vocab=vocab, context=context, width=width, layers=layers, heads=heads)
    if width % heads:
        raise ValueError(f"width: expected a multiple of heads={heads}, got {width}")
    with _seeded(seed):
        return CharTransformer(vocab, context, width, layers, heads)
