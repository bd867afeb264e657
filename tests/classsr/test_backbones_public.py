"""Our FSRCNN and CARN are the published networks: FSRCNN with one input channel is yjn870's
FSRCNN(56, 12, 4) layer for layer, and CARN is nmhkahn's CARN-M with one of its upsamplers (group
convolutions, the shared residual block, the mean shift). Checked against plain forward passes of
the public layouts (tests/public_layouts.py) with random weights, and with the public files where
the shared data has them."""
import pytest
import torch
from public_layouts import carn_m_forward, carn_m_state, fsrcnn_forward, fsrcnn_state
from torch import nn

from srlab.classsr.backbones import CARN, FSRCNN
from srlab.converters import from_nmhkahn_carn_m, from_yjn870_fsrcnn

PUBLIC_CARN_M_WEIGHTS = 414_811  # nmhkahn's carn_m.pth: one body, upsamplers for x2, x3 and x4, two mean shifts


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_fsrcnn_with_one_channel_has_yjn870s_layers():
    """5x5 conv + PReLU, 1x1 shrink + PReLU, four 3x3 + PReLU, 1x1 expand + PReLU (a slope per
    channel each), a 9x9 transposed conv with stride = scale, padding 4, output padding scale - 1."""
    for scale in (2, 3, 4):
        net = FSRCNN(d=56, s=12, m=4, scale=scale, in_channels=1)
        assert n_params(net) == 12_809  # as each public file
        convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs] == [
            (1, 56, 5, 2), (56, 12, 1, 0), *[(12, 12, 3, 1)] * 4, (12, 56, 1, 0)]
        prelus = [m for m in net.body if isinstance(m, nn.PReLU)]
        assert [p.num_parameters for p in prelus] == [56, 12, 12, 12, 12, 12, 56]
        assert all(isinstance(a, nn.Conv2d) and isinstance(b, nn.PReLU) for a, b in zip(net.body[::2], net.body[1::2]))
        d = net.deconv
        assert (d.in_channels, d.out_channels, d.kernel_size, d.stride, d.padding, d.output_padding) == (
            56, 1, (9, 9), (scale, scale), (4, 4), (scale - 1, scale - 1))
        assert net(torch.rand(1, 1, 7, 9)).shape == (1, 1, 7 * scale, 9 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_converted_fsrcnn_computes_yjn870s_forward_pass(scale, tmp_path):
    torch.manual_seed(scale)
    weights = fsrcnn_state(d=8, s=4, m=2)
    torch.save(weights, tmp_path / f"fsrcnn_x{scale}.pth")
    converted = from_yjn870_fsrcnn(tmp_path / f"fsrcnn_x{scale}.pth")
    net = FSRCNN(**converted.state["card"]["arguments"])
    net.load_state_dict(converted.state["model"])
    y = torch.rand(1, 1, 10, 7)
    torch.testing.assert_close(net(y), fsrcnn_forward(weights, y, scale), atol=1e-6, rtol=1e-5)


def test_carn_is_carn_m_with_one_upsampler():
    """Our CARN at x2, x3 and x4 shares everything but the upsampler; the body, the three
    upsamplers and the two 1x1 mean-shift layers (24 weights) are the public multi-scale file."""
    nets = {s: CARN(nf=64, scale=s, group=4) for s in (2, 3, 4)}
    bodies = {n_params(net) - n_params(net.upsample) for net in nets.values()}
    assert len(bodies) == 1 and [n_params(nets[s]) for s in (2, 3, 4)] == [257_027, 303_427, 294_147]
    assert bodies.pop() + sum(n_params(net.upsample) for net in nets.values()) + 24 == PUBLIC_CARN_M_WEIGHTS
    net = nets[4]
    block = net.body.steps[0].steps[0]
    assert net.body.steps[0].steps[1] is block and net.body.steps[0].steps[2] is block  # one block, three uses
    assert [c.groups for c in block.body if isinstance(c, nn.Conv2d)] == [4, 4, 1]
    assert [c.groups for c in net.upsample if isinstance(c, nn.Conv2d)] == [4, 4]
    assert torch.allclose(net.mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040]))


def test_converted_carn_m_computes_the_public_forward_pass_at_every_scale(tmp_path):
    torch.manual_seed(0)
    weights = carn_m_state(nf=8, group=2)
    torch.save(weights, tmp_path / "carn_m.pth")
    x = torch.rand(1, 3, 9, 8)
    for scale in (2, 3, 4):
        converted = from_nmhkahn_carn_m(tmp_path / "carn_m.pth", scale)
        net = CARN(**converted.state["card"]["arguments"])
        net.load_state_dict(converted.state["model"])
        torch.testing.assert_close(net(x), carn_m_forward(weights, x, scale, group=2), atol=1e-5, rtol=1e-5)


def public(shared_data, name):
    path = shared_data / "reference" / "public_weights" / name
    if not path.is_file():
        pytest.skip(f"no {name} in the shared data")
    return path


def test_the_public_carn_m_file_at_each_of_its_scales(shared_data):
    path = public(shared_data, "carn_m.pth")
    weights = torch.load(path, weights_only=True, map_location="cpu")  # saved from a GPU
    assert sum(v.numel() for v in weights.values()) == PUBLIC_CARN_M_WEIGHTS
    x = torch.rand(1, 3, 10, 9)
    for scale in (2, 3, 4):
        converted = from_nmhkahn_carn_m(path, scale)
        assert converted.state["card"]["provenance"]["licence"] == "MIT (nmhkahn/CARN-pytorch)"
        net = CARN(**converted.state["card"]["arguments"])
        net.load_state_dict(converted.state["model"])
        with torch.no_grad():
            torch.testing.assert_close(net(x), carn_m_forward(weights, x, scale, group=4), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_public_fsrcnn_files(scale, shared_data):
    path = public(shared_data, f"fsrcnn_x{scale}.pth")
    converted = from_yjn870_fsrcnn(path)
    assert converted.state["card"]["arguments"] == {"d": 56, "s": 12, "m": 4, "scale": scale, "in_channels": 1}
    net = FSRCNN(**converted.state["card"]["arguments"])
    net.load_state_dict(converted.state["model"])
    y = torch.rand(1, 1, 12, 11)
    weights = torch.load(path, weights_only=True, map_location="cpu")
    with torch.no_grad():
        torch.testing.assert_close(net(y), fsrcnn_forward(weights, y, scale), atol=1e-5, rtol=1e-5)
