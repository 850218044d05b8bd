"""Maxout units against a hand computation of max(w1ᵀx + b1, …, wkᵀx + bk)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainlab.nn.layers import Maxout, MaxoutConv2d


def test_maxout_seed_example_by_hand():
    # Two units, k = 2 pieces each, 2 inputs: unit j owns rows 2j, 2j + 1.
    m = Maxout(2, 2, k=2)
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]))
        m.linear.bias.copy_(torch.tensor([0.0, 0.5, 0.0, 1.0]))
    x = torch.tensor([[2.0, -1.0], [-3.0, 1.0]])
    # x = (2, -1): unit 0 = max(2, -0.5) = 2;   unit 1 = max(1, -1) = 1
    # x = (-3, 1): unit 0 = max(-3, 1.5) = 1.5; unit 1 = max(-2, 4) = 4
    torch.testing.assert_close(m(x), torch.tensor([[2.0, 1.0], [1.5, 4.0]]))


def test_maxout_matches_loop_over_pieces():
    gen = torch.Generator().manual_seed(0)
    m = Maxout(7, 5, k=3)
    x = torch.randn(4, 7, generator=gen)
    w, b = m.linear.weight.detach(), m.linear.bias.detach()
    expected = torch.empty(4, 5)
    for n in range(4):
        for j in range(5):
            expected[n, j] = max(float(w[j * 3 + i] @ x[n] + b[j * 3 + i]) for i in range(3))
    torch.testing.assert_close(m(x), expected)
    assert m(torch.randn(2, 3, 7)).shape == (2, 3, 5)


def test_maxout_with_one_piece_is_linear():
    m = Maxout(4, 3, k=1)
    x = torch.randn(5, 4)
    torch.testing.assert_close(m(x), F.linear(x, m.linear.weight, m.linear.bias))


def test_maxout_conv2d_is_max_over_piece_convolutions():
    gen = torch.Generator().manual_seed(1)
    m = MaxoutConv2d(3, 4, 3, k=2, padding=1)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    w, b = m.conv.weight, m.conv.bias
    pieces = [F.conv2d(x, w[i::2], b[i::2], padding=1) for i in range(2)]
    torch.testing.assert_close(m(x), torch.maximum(pieces[0], pieces[1]))
    assert m(x).shape == (2, 4, 6, 5)


@pytest.mark.parametrize("make", [lambda: Maxout(3, 2, k=0), lambda: MaxoutConv2d(3, 2, 3, k=0)])
def test_maxout_rejects_no_pieces(make):
    with pytest.raises(ValueError, match=r"^maxout k \(pieces per unit\) must be >= 1, got 0$"):
        make()
