"""ClassSR's networks and losses: the paper's sizes and FLOPs, every backbone, the losses."""

import pytest
import torch
from classsr_helpers import n_params
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.classsr.losses import average_loss, class_loss
from srlab.classsr.models import Classifier, ClassSR, MSRResNet


def test_parameter_counts_and_flops_are_the_papers():
    assert n_params(Classifier()) == 60_035
    for nf, params, gflops in ((36, 481_683, 1.66), (52, 1_002_771, 3.44), (64, 1_517_571, 5.20)):
        model = MSRResNet(nf=nf)
        assert n_params(model) == params
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(torch.rand(1, 3, 32, 32))
        assert out.shape == (1, 3, 128, 128)
        assert counter.get_total_flops() / 1e9 == pytest.approx(gflops, rel=0.02)


def test_fsrcnn_carn_and_rcan_backbones_have_the_papers_sizes_at_classsrs_widths():
    from srlab.classsr.backbones import CARN, FSRCNN, RCAN

    # FSRCNN d = 16 / 36 / 56 (s 12, m 4), CARN-M 36 / 52 / 64 and RCAN-O, x4, per 32x32 LR sub-image;
    # the ClassSR paper's CARN-O: 295K weights, 1.15 GFLOPs; RCAN-O: 15.6M weights, 32.60 GFLOPs.
    for make, width, params, gflops in ((FSRCNN, 16, 10_843, 0.0218), (FSRCNN, 36, 17_763, 0.0358),
                                        (FSRCNN, 56, 24_683, 0.0498), (CARN, 36, 94_395, 0.380),
                                        (CARN, 52, 195_003, 0.772), (CARN, 64, 294_147, 1.155),
                                        (RCAN, 64, 15_592_355, 32.60)):
        model = make(width)
        assert n_params(model) == params
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(torch.rand(1, 3, 32, 32))
        assert out.shape == (1, 3, 128, 128)
        assert counter.get_total_flops() / 1e9 == pytest.approx(gflops, rel=0.01)
    for scale in (2, 3, 4):  # any size, any scale: the ragged sub-images need both
        for model in (FSRCNN(d=8, m=1, scale=scale), CARN(nf=8, blocks=1, scale=scale), RCAN(8, 1, 1, scale=scale)):
            assert model(torch.rand(2, 3, 7, 9)).shape == (2, 3, 7 * scale, 9 * scale)
    for backbone, widths in (("fsrcnn", [16, 36, 56]), ("carn", [36, 52, 64])):
        net = ClassSR(widths=widths, backbone=backbone, nb=1, classifier_width=8).eval()
        assert type(net.branches[0]).__name__ == backbone.upper() and net.widest == 2
        sr, classes, _ = net.upscale(torch.rand(1, 3, 45, 70))
        assert sr.shape == (1, 3, 180, 280) and classes.shape == (6,)
    with pytest.raises(ValueError, match="backbone must be one of msrresnet, fsrcnn, carn, rcan, got 'vgg'"):
        ClassSR(backbone="vgg")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_msrresnet_any_scale_starts_near_bilinear(scale):
    lr = torch.rand(2, 3, 7, 9)
    sr = MSRResNet(nf=8, nb=2, scale=scale)(lr)
    bilinear = nn.functional.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=False)
    assert sr.shape == (2, 3, 7 * scale, 9 * scale)
    assert (sr - bilinear).abs().mean() < 0.05  # 0.1-scaled initialisation


def test_class_loss_and_average_loss_on_hand_made_probabilities():
    one_hot = torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    uniform = torch.full((6, 3), 1 / 3)
    all_first = torch.eye(3)[[0] * 6]
    assert class_loss(one_hot).item() == pytest.approx(0.0)
    assert class_loss(uniform).item() == pytest.approx(2.0)  # M - 1
    assert class_loss(all_first).item() == pytest.approx(0.0)
    assert average_loss(one_hot).item() == pytest.approx(0.0)  # each class used B/M times
    assert average_loss(uniform).item() == pytest.approx(0.0)
    assert average_loss(all_first).item() == pytest.approx(1.0)  # the maximum
    half = torch.tensor([[0.5, 0.5, 0.0]])
    assert class_loss(half).item() == pytest.approx(2 - (0 + 0.5 + 0.5))
    with pytest.raises(ValueError, match=r"\(B, M\)"):
        class_loss(torch.rand(3))

