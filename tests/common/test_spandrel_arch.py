"""srlab's exported networks load in spandrel (chaiNNer's loader) and upscale exactly as srlab does;
the format round-trips; our architectures claim our files only, and spandrel's claim none of ours."""
import json

import pytest
import torch
from conftest import REPO

from srlab.card import NetworkCard
from srlab.checkpoint import save_checkpoint
from srlab.config import Config, TrainConfig
from srlab.errors import UserError
from srlab.imresize import imresize
from srlab.loading import load
from srlab.method import build_card
from srlab.registry import METHODS, build_model

spandrel = pytest.importorskip("spandrel")
safetensors_torch = pytest.importorskip("safetensors.torch")
s = pytest.importorskip("srlab.spandrel_arch")

# Tiny networks (as tests/common/test_loading.py's SMALL), the method they run with, their scales.
SMALL = {
    "vdsr": ({"channels": 4, "num_layers": 3}, "supervised", [3, 2]),  # Y of the bicubic upscale, 2 scales
    "asym_vdsr": ({"channels": 4, "num_layers": 3, "bias": True}, "supervised", [2]),
    "mzsr_net": ({"channels": 4, "num_layers": 3}, "supervised", [2]),  # MZSR stage 1: RGB bicubic upscale
    "msrresnet": ({"nf": 4, "nb": 1, "scale": 2}, "supervised", [2]),  # RGB LR
    "fsrcnn": ({"d": 4, "s": 2, "m": 1, "scale": 2, "in_channels": 1}, "supervised", [2]),  # Y of LR
    "carn": ({"nf": 4, "group": 2, "blocks": 1, "scale": 2}, "supervised", [2]),  # shared tensors
}
CASES = list(SMALL)


def tiny(case: str) -> tuple[dict[str, torch.Tensor], NetworkCard]:
    """Random weights (seeded) and the card of a tiny network."""
    architecture, method_name = ("mzsr_net", "mzsr_meta") if case == "mzsr_meta" else (case, SMALL[case][1])
    arguments, _, scales = SMALL[architecture]
    torch.manual_seed(0)
    cfg = Config(method=method_name, model={"type": architecture, **arguments}, train=TrainConfig(scales=scales))
    method = METHODS[method_name].for_inference(cfg, lambda: build_model(cfg.model))
    network = method.build_model()
    with torch.no_grad():  # some networks start with a zero tail: make every weight count
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return network.state_dict(), build_card(method, network, {"written_by": "tests"})


def export(case: str, tmp_path) -> tuple:
    weights, card = tiny(case)
    path = tmp_path / f"{case}.safetensors"
    safetensors_torch.save_file(s.to_exported(weights, card), str(path))
    return path, weights, card


@pytest.fixture(scope="module", autouse=True)
def registered():
    s.register()


@pytest.mark.parametrize("case", CASES)
def test_spandrel_loads_each_network_and_upscales_as_srlab_does(case, tmp_path):
    path, weights, card = export(case, tmp_path)
    model = spandrel.ModelLoader().load_from_file(path)
    assert isinstance(model, spandrel.ImageModelDescriptor)
    assert model.architecture.id == f"srlab.{card.architecture}" and model.purpose == "SR"
    assert model.scale == card.scales[0] and (model.input_channels, model.output_channels) == (3, 3)

    checkpoint = tmp_path / "net.pt"
    save_checkpoint({"model": weights, "card": card.to_dict()}, checkpoint)
    method, network, _ = load(checkpoint)
    torch.manual_seed(1)
    lr = torch.rand(1, 3, 12, 16)
    expected = method.infer(network.eval(), lr, card.scales[0]).image.clamp(0, 1)
    got = model(lr)
    assert got.shape == (1, 3, 12 * card.scales[0], 16 * card.scales[0])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got - imresize(lr, scale=card.scales[0]).clamp(0, 1)).abs().max() > 1e-3  # the network took part


SHIPPED = [REPO / "weights" / f for f in ("mzsr/pretrain_x2_cpu.pt", "asymsr/vdsr_x234_cpu.pt", "classsr/carn_o_x4_cpu.pt")]


@pytest.mark.parametrize("checkpoint", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_networks_export_and_upscale_in_spandrel_as_in_srlab(checkpoint, tmp_path):
    if not checkpoint.is_file():
        pytest.skip(f"{checkpoint} is not in this checkout")
    method, network, card = load(checkpoint)
    path = tmp_path / "shipped.safetensors"
    safetensors_torch.save_file(s.to_exported(network.state_dict(), card), str(path))
    model = spandrel.ModelLoader().load_from_file(path)
    assert model.architecture.id == f"srlab.{card.architecture}" and model.scale == card.scales[0]
    lr = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(2))
    expected = method.infer(network.eval(), lr, card.scales[0]).image.clamp(0, 1)
    torch.testing.assert_close(model(lr), expected, atol=1e-5, rtol=0)


def test_half_precision_follows_the_input_convention(tmp_path):
    rgb = spandrel.ModelLoader().load_from_file(export("msrresnet", tmp_path)[0])
    assert rgb.supports_half and rgb.supports_bfloat16
    lr = torch.rand(1, 3, 12, 16)
    full = rgb(lr)
    torch.testing.assert_close(rgb.half()(lr.half()).float(), full, atol=1e-2, rtol=0)
    y = spandrel.ModelLoader().load_from_file(export("vdsr", tmp_path)[0])
    assert not y.supports_half and not y.supports_bfloat16  # srlab hands a Y network fp32 Y


def test_from_exported_round_trips_card_and_weights_exactly(tmp_path):
    path, weights, card = export("carn", tmp_path)
    state = safetensors_torch.load_file(str(path))
    assert set(state) == {s.CARD_KEY, *(f"srlab.carn.{k}" for k in weights)}
    read_card, read_weights = s.from_exported(state, str(path))
    assert read_card == card
    assert read_weights.keys() == weights.keys()
    assert all(torch.equal(read_weights[k], v) for k, v in weights.items())
    assert json.loads(state[s.CARD_KEY].numpy().tobytes()) == json.loads(json.dumps(card.to_dict()))


def test_a_plain_state_dict_is_not_in_the_format_and_not_claimed():
    weights, _ = tiny("vdsr")
    assert s.from_exported(weights, "x") is None
    assert not any(a.detect(weights) for a in s.architectures())
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.MAIN_REGISTRY.load(dict(weights))


def test_spandrels_own_architectures_keep_their_files_and_claim_none_of_ours(tmp_path):
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    for net, arch_id in [(SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), "SPAN"),
                         (ESRGAN(num_filters=8, num_blocks=1, scale=2), "ESRGAN")]:
        state = net.state_dict()
        assert not any(a.detect(state) for a in s.architectures())
        assert spandrel.MAIN_REGISTRY.load(dict(state)).architecture.id == arch_id
    for case in SMALL:
        exported = s.to_exported(*tiny(case))
        claimed = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures("detection") if a.detect(exported)]
        assert claimed == [f"srlab.{case}"]


def test_register_is_idempotent():
    before = len(spandrel.MAIN_REGISTRY)
    assert s.register() == []
    assert len(spandrel.MAIN_REGISTRY) == before
    assert {f"srlab.{a}" for a in s.ARCHITECTURES} <= {a.architecture.id for a in spandrel.MAIN_REGISTRY}


def broken(state: dict, text: bytes) -> dict:
    return {**state, s.CARD_KEY: torch.frombuffer(bytearray(text), dtype=torch.uint8).clone()}


def test_a_broken_card_is_a_one_line_error_naming_the_file(tmp_path):
    path = export("vdsr", tmp_path)[0]
    state = broken(safetensors_torch.load_file(str(path)), b'{"architecture": "vdsr", ')
    bad = tmp_path / "bad.safetensors"
    safetensors_torch.save_file(state, str(bad))
    with pytest.raises(UserError, match=f"^{bad}: srlab.card is not valid JSON") as raised:
        s.from_exported(safetensors_torch.load_file(str(bad)), str(bad))
    assert "\n" not in str(raised.value)
    # spandrel names no file to its architectures; the weights' prefix still picks ours, which says why.
    with pytest.raises(UserError, match="srlab.card is not valid JSON"):
        spandrel.ModelLoader().load_from_file(bad)


def test_keys_of_another_architecture_and_missing_weights_are_one_line_errors(tmp_path):
    weights, card = tiny("vdsr")
    exported = s.to_exported(weights, card)
    foreign = {k.replace("srlab.vdsr.", "srlab.carn."): v for k, v in exported.items()}
    with pytest.raises(UserError, match="^f.safetensors: 'srlab.carn.* is not a weight of .* 'vdsr'"):
        s.from_exported(foreign, "f.safetensors")
    first = next(k for k in exported if k != s.CARD_KEY)
    missing = {k: v for k, v in exported.items() if k != first}
    with pytest.raises(UserError, match="^m.safetensors: .*missing from the file") as raised:
        s.build(*s.from_exported(missing, "m.safetensors"), "m.safetensors")
    assert "\n" not in str(raised.value)
    with pytest.raises(UserError, match="holds a network card .* but no weights"):
        s.from_exported({s.CARD_KEY: exported[s.CARD_KEY]}, "e.safetensors")


def test_a_method_spandrel_cannot_run_is_a_one_line_error():
    weights, card = tiny("vdsr")
    data = {**card.to_dict(), "method": "classsr"}
    exported = broken(s.to_exported(weights, card), json.dumps(data).encode())
    with pytest.raises(UserError, match="card field method = 'classsr'; spandrel can run"):
        spandrel.MAIN_REGISTRY.load(exported)


def test_an_mzsr_meta_network_is_refused_not_run_unadapted(tmp_path):
    """spandrel cannot adapt it to each image; unadapted (MZSR(0)) it is worse than interpolation."""
    path, _, _ = export("mzsr_meta", tmp_path)
    with pytest.raises(Exception) as caught:
        spandrel.ModelLoader().load_from_file(path)
    assert "card field method = 'mzsr_meta'" in str(caught.value) and "\n" not in str(caught.value)


def test_importing_srlab_after_spandrel_registers_our_architectures():
    import subprocess
    import sys

    code = ("import spandrel, srlab; ids = [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()]; "
            "print(sum(i.startswith('srlab.') for i in ids))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(len(s.ARCHITECTURES))
