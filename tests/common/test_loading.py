"""The one loader and the network card: every shipped file loads the same way, every registered
network survives build -> forward -> backward -> card -> checkpoint -> load -> export, and every
crafted card field is a one-line error naming the file and the field."""
import json

import pytest
import torch
from conftest import REPO, run_inline

from srlab.card import NetworkCard
from srlab.checkpoint import load_checkpoint, save_checkpoint
from srlab.config import Config, TrainConfig
from srlab.errors import UserError
from srlab.loading import load
from srlab.method import build_card
from srlab.network import InputConvention, Network
from srlab.registry import METHODS, MODELS, build_model

SHIPPED = sorted((REPO / "weights").glob("*/*.pt"))

# Every registered network, small: adding a network to the registry means adding it here.
SMALL = {
    "mzsr_net": {"channels": 4, "num_layers": 3},
    "kernel_net": {"channels": 4},
    "vdsr": {"channels": 4, "num_layers": 3},
    "asym_vdsr": {"channels": 4, "num_layers": 3, "bias": True},
    "msrresnet": {"nf": 4, "nb": 1, "scale": 2},
    "fsrcnn": {"d": 4, "s": 2, "m": 1, "scale": 2},
    "carn": {"nf": 4, "group": 2, "blocks": 1, "scale": 2},
    "rcan": {"nf": 4, "groups": 1, "blocks": 1, "reduction": 2, "scale": 2},
    "classsr": {"widths": [4, 6], "nb": 1, "scale": 2, "tile": 8, "step": 6, "classifier_width": 4},
}
RUNS_WITH = {"classsr": "classsr", "kernel_net": "kernel_net"}  # the rest: supervised


def test_every_registered_network_has_a_small_version_here():
    assert set(SMALL) == set(MODELS)


def small_method(architecture: str):
    name = RUNS_WITH.get(architecture, "supervised")
    cfg = Config(method=name, model={"type": architecture, **SMALL[architecture]}, train=TrainConfig(scales=[2]))
    return METHODS[name].for_inference(cfg, lambda: build_model(cfg.model))


@pytest.mark.parametrize("architecture", sorted(SMALL))
def test_every_network_builds_runs_trains_and_round_trips_through_its_card(architecture, tmp_path):
    torch.manual_seed(0)
    method = small_method(architecture)
    network = method.build_model()
    assert isinstance(network, Network) and isinstance(network.input_convention, InputConvention)
    assert network.scale is None or network.scale == 2
    convention = network.input_convention
    side = 16 if convention.upsampled else 8  # the bicubic upscale is already the output's size
    x = torch.rand(2, convention.channels, side, side, requires_grad=True)
    y = network(x)
    y.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in network.parameters() if p.requires_grad)

    card = build_card(method, network, {"written_by": "tests"})
    assert NetworkCard.from_dict(card.to_dict(), "x") == card
    assert NetworkCard.from_dict(json.loads(json.dumps(card.to_dict())), "x") == card  # JSON metadata too
    path = tmp_path / "net.pt"
    save_checkpoint({"model": network.state_dict(), "card": card.to_dict()}, path)
    _, loaded, read = load(path)
    assert read == card
    network.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x.detach()), network(x.detach()))

    pytest.importorskip("safetensors")
    from safetensors import safe_open

    from srlab.commands.export import export_safetensors

    export_safetensors(path, tmp_path / "net.safetensors")
    with safe_open(tmp_path / "net.safetensors", "pt") as f:
        assert NetworkCard.from_dict(json.loads(f.metadata()["srlab.card"]), "x") == card
        prefix = f"srlab.{card.architecture}."  # namespaced, so spandrel's architectures claim none of it
        assert all(torch.equal(f.get_tensor(prefix + k), v) for k, v in network.state_dict().items())
    _, exported, exported_card = load(tmp_path / "net.safetensors")  # and srlab reads it back
    assert exported_card == card and exported.state_dict().keys() == network.state_dict().keys()


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_checkpoint_loads_with_a_card_that_round_trips(path):
    method, network, card = load(path)
    assert NetworkCard.from_dict(card.to_dict(), str(path)) == card
    assert network.input_convention is card.input and card.scales
    assert card.adapts == (card.method == "mzsr_meta")


ASYM = REPO / "weights" / "asymsr" / "asym_vdsr_x234_cpu.pt"
META = REPO / "weights" / "mzsr" / "meta_x2_cpu.pt"
CLASSSR = REPO / "weights" / "classsr" / "classsr_x4_cpu.pt"


def card_of(path):
    state = load_checkpoint(path)
    weights = state["model"]
    _, _, card = load(path)
    return state, weights, card.to_dict()


CRAFTED = [  # (what is changed, the field the error names)
    (lambda c: c.update(architecture="vdsr2"), "card field architecture = 'vdsr2'; allowed:"),
    (lambda c: c.update(architecture=7), "card field architecture = 7"),
    (lambda c: c["arguments"].update(channels=10**7), "card field arguments = .* do not fit the weights"),
    (lambda c: c["arguments"].update(channels=-3), "card field arguments: .*channels must be >= 1"),
    (lambda c: c["arguments"].update(colour="red"), "card field arguments: .*unknown option"),
    (lambda c: c.update(arguments=[1, 2]), "card field arguments = \\[1, 2\\]"),
    (lambda c: c.update(input="rgb_lr"), "card field input = 'rgb_lr', but asym_vdsr with these arguments takes"),
    (lambda c: c.update(input="cmyk"), "card field input = 'cmyk'; allowed:"),
    (lambda c: c.update(scales=[1]), "card field scales = \\[1\\]; a list of distinct integers from 2 to 16"),
    (lambda c: c.update(scales=[10**6]), "card field scales"),
    (lambda c: c.update(scales="2"), "card field scales = '2'"),
    (lambda c: c.update(method="gan"), "card field method = 'gan'; allowed:"),
    (lambda c: c.update(adapts=True), "card field adapts = True, but method 'supervised' does not adapt"),
    (lambda c: c.update(adapts="yes"), "card field adapts = 'yes'; true or false"),
    (lambda c: c.update(recommended={"adapt_steps": 3}), "card field recommended: method 'supervised' takes no"),
    (lambda c: c.update(recommended={"x": {"y": 1}}), "card field recommended = "),
    (lambda c: c.update(provenance={"a": [1]}), "card field provenance = "),
    (lambda c: c.update(colour="red"), "card field 'colour' is unknown"),
    (lambda c: c.pop("scales"), "card field 'scales' is missing"),
]


@pytest.mark.parametrize("change, message", CRAFTED, ids=[m.split(" = ")[0].split(":")[0][11:] + str(i)
                                                          for i, (_, m) in enumerate(CRAFTED)])
def test_a_crafted_card_field_is_a_one_line_error_naming_file_and_field(change, message, tmp_path):
    state, weights, card = card_of(ASYM)
    change(card)
    path = tmp_path / "crafted.pt"
    save_checkpoint({"model": weights, "card": card}, path)
    with pytest.raises(UserError, match=f"^{path}: {message}") as raised:
        load(path)
    assert "\n" not in str(raised.value)


def test_crafted_recommendations_of_adapting_and_routing_networks_are_named(tmp_path):
    for source, change, message in [
        (META, {"adapt_steps": -1}, "card field recommended.adapt_steps: must be >= 0"),
        (META, {"adapt_lrs": [0.0]}, "card field recommended.adapt_lrs: must list finite learning rates > 0"),
        (META, {"adapt_lrs": "fast"}, "card field recommended.adapt_lrs"),
        (META, {"steps": 3}, "card field recommended.steps: unknown key"),
        (CLASSSR, {"tile": 10**6}, "card field arguments: .*tile <= 1024"),
        (CLASSSR, {"blend": "feather"}, "card field recommended.blend: 'feather' is not allowed"),
    ]:
        _, weights, card = card_of(source)
        card["recommended"] = {**card["recommended"], **change}
        path = tmp_path / "crafted.pt"
        save_checkpoint({"model": weights, "card": card}, path)
        with pytest.raises(UserError, match=f"^{path}: {message}"):
            load(path)


def test_the_card_is_checked_before_the_network_is_allocated(tmp_path):
    """A card asking for an enormous network is refused from the weights' shapes alone: building it
    for real would need terabytes."""
    _, weights, card = card_of(ASYM)
    card["arguments"]["channels"] = 200_000
    path = tmp_path / "huge.pt"
    save_checkpoint({"model": weights, "card": card}, path)
    with pytest.raises(UserError, match="do not fit the weights"):
        load(path)


def test_upscale_reports_a_crafted_card_in_one_line(tmp_path):
    from PIL import Image

    _, weights, card = card_of(ASYM)
    card["input"] = "rgb_lr"
    save_checkpoint({"model": weights, "card": card}, tmp_path / "crafted.pt")
    Image.new("RGB", (12, 10)).save(tmp_path / "in.png")
    result = run_inline("upscale.py", "--checkpoint", tmp_path / "crafted.pt", "--input", tmp_path / "in.png",
                        "--out", tmp_path / "out.png")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "card field input" in result.stderr
    assert not (tmp_path / "out.png").exists()
