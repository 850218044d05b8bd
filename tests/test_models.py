"""The model zoo: shapes, parameter counts against the papers, the no-skip switch."""

import pytest
import torch

from trainlab.nn import BasicBlock, cnn, mlp, resnet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_mlp_784_256_256_10_parameter_count():
    model = mlp((1, 28, 28), 10, widths=(256, 256))
    assert n_params(model) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_cnn_outputs_logits(batchnorm):
    model = cnn((1, 28, 28), 10, channels=(8, 16), norm="batch" if batchnorm else "none")
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert has_bn == batchnorm


def test_resnet20_has_the_papers_027m_parameters():
    # He et al. 2016, Table 6: ResNet-20 on CIFAR-10 has 0.27M parameters.
    model = resnet((3, 32, 32), 10, depth=20)
    assert 0.26e6 < n_params(model) < 0.28e6
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 9
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_without_skips_ignores_the_shortcut():
    torch.manual_seed(0)
    block = BasicBlock(4, 4, stride=1, skip=False, activation="relu").eval()
    x = torch.randn(2, 4, 8, 8)
    residual = block.act2(block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x))))))
    torch.testing.assert_close(block(x), residual)
    block.skip = True
    torch.testing.assert_close(
        block(x), block.act2(block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x))))) + x)
    )


def test_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet((3, 32, 32), 10, depth=21)


def _copy_weights(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy parameters and buffers module by module, in order (the layer indices differ)."""
    pairs = zip(
        [m for m in src.modules() if list(m.parameters(recurse=False))],
        [m for m in dst.modules() if list(m.parameters(recurse=False))],
        strict=True,
    )
    for a, b in pairs:
        b.load_state_dict(a.state_dict())


@pytest.mark.parametrize(("norm", "convs"), [("none", 1), ("none", 2), ("batch", 1), ("batch", 2)])
def test_pool_first_computes_the_same_function(norm, convs):
    """max-pool commutes with a per-channel increasing map (ReLU; BatchNorm in eval mode with
    positive scales), so pooling before the stage's last norm + ReLU is the same network."""
    torch.manual_seed(0)
    late = cnn((1, 28, 28), 10, channels=(8, 16), convs_per_stage=convs, norm=norm).double()
    early = cnn((1, 28, 28), 10, channels=(8, 16), convs_per_stage=convs, norm=norm,
                pool_first=True).double()  # fmt: skip
    for m in late.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    _copy_weights(late, early)
    kinds = [type(m).__name__ for m in early]
    first_pool = kinds.index("MaxPool2d")
    assert kinds[first_pool - 1] == "Conv2d" and kinds.count("Conv2d") == 2 * convs
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(early.eval()(x), late.eval()(x), rtol=0, atol=1e-12)
