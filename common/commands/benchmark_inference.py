"""How far each inference path is from the CPU's limit: achieved GFLOP/s next to an estimated peak.

    srlab benchmark inference --checkpoint weights/classsr/msrresnet_o_x4_cpu.pt [--size 256] [--repeats 3]
                              [--json out.json]

For one network and one LR image of ``--size`` pixels square, each path srlab can run it on is
timed (rounds interleaved, median): torch fp32, torch bf16 where the CPU has bf16 units (AMX,
AVX512-BF16) or on a CUDA GPU, and for a network that runs by one forward pass ONNX Runtime fp32,
OpenVINO fp32 and OpenVINO with its bf16 hint (on a CPU with bf16 units).
What is timed is the network itself on the input its card asks for (the Y channel of the bicubic
upscale, or the LR image), so the FLOPs are exact (PyTorch's ``FlopCounterMode``, 2 per
multiply-add) and GFLOP/s = FLOPs / seconds. The peak is an estimate, not a measurement: cores ×
clock × fp32 FLOPs per cycle per core from the widest vector unit (AVX-512: 64, AVX2 with FMA: 32,
else 8), with the clock ``/proc/cpuinfo`` reports now (turbo and throttling move it). A share above
100 % means the estimate is low (a turbo clock) or the path computes fewer multiplications than
a direct convolution (Winograd), not that the hardware was beaten.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from srlab.backends import on_backend
from srlab.checkpoint import save_json
from srlab.cli import add_json_output, json_output, main_guard
from srlab.device import cpu_bf16_units, resolve_device, tune_cpu_allocator
from srlab.errors import UserError
from srlab.imresize import imresize
from srlab.loading import load
from srlab.method import inference_model
from srlab.timing import interleaved_median_seconds


def cpu_peak_gflops(threads: int) -> tuple[float | None, str]:
    """The estimated fp32 peak of ``threads`` cores, and how it was estimated."""
    capability = torch.backends.cpu.get_cpu_capability()
    per_cycle = 64 if "AVX512" in capability else 32 if "AVX2" in capability else 8
    try:
        clocks = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("cpu MHz")]
    except OSError:
        clocks = []
    if not clocks:
        return None, f"{capability}, clock unknown"
    ghz = max(clocks) / 1000
    return threads * ghz * per_cycle, f"{threads} cores x {ghz:.2f} GHz x {per_cycle} FLOPs/cycle ({capability})"


def network_input(card, size: int, scale: int) -> torch.Tensor:
    """What the card's network takes for an LR image of ``size`` x ``size``."""
    lr = torch.rand(1, 3, size, size)
    x = imresize(lr, scale=scale) if card.input.upsampled else lr
    return x[:, :1] if card.input.y_channel else x


def paths(network: torch.nn.Module, card, device: torch.device) -> dict[str, torch.nn.Module]:
    """Each way srlab can run the network of ``card`` here."""
    model = inference_model(network, device, channels_last=True)
    found = {"torch fp32": model}
    if device.type == "cuda" or cpu_bf16_units():
        found["torch bf16"] = model
    if card.method != "supervised" or device.type != "cpu":
        return found
    runtimes = [("onnxruntime", "fp32"), ("openvino", "fp32")] + ([("openvino", "bf16")] if cpu_bf16_units() else [])
    for backend, precision in runtimes:
        try:
            found[f"{backend} {precision}"] = on_backend(model, card.method, card.input.channels, device, backend,
                                                         precision)
        except Exception as exc:  # not installed, or a network the exporter cannot write: say so, time the rest
            print(f"{backend} {precision}: not timed ({exc})")
    return found


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--scale", type=int, help="default: the network's first scale")
    parser.add_argument("--size", type=int, default=256, help="LR side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    add_json_output(parser, "--json", None)
    args = parser.parse_args(argv)
    if args.size < 8 or args.repeats < 1:
        raise UserError(f"--size must be at least 8 and --repeats at least 1, got {args.size} and {args.repeats}")
    out = json_output(args.json, "--json", args.overwrite)
    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    _, network, card = load(args.checkpoint)
    scale = args.scale or card.scales[0]
    x = network_input(card, args.size, scale).to(device)
    runs = paths(network, card, device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        runs["torch fp32"](x)
    flops = counter.get_total_flops()

    def run(name: str, model: torch.nn.Module):
        def once():
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=name == "torch bf16"):
                model(x)
        return once

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    seconds = interleaved_median_seconds({n: run(n, m) for n, m in runs.items()}, args.repeats, warmup=1, sync=sync)
    peak, how = cpu_peak_gflops(torch.get_num_threads()) if device.type == "cpu" else (None, device.type)
    print(f"{card.architecture} x{scale}, LR {args.size}x{args.size}: {flops / 1e9:.1f} GFLOPs; peak estimate: "
          f"{f'{peak:.0f} GFLOP/s' if peak else 'unknown'} ({how})")
    print("| path | s | GFLOP/s | of the fp32 peak |\n|---|---|---|---|")
    rows = []
    for name, s in seconds.items():
        rate = flops / s / 1e9
        rows.append({"path": name, "seconds": s, "gflops_per_s": rate, "peak_share": rate / peak if peak else None})
        print(f"| {name} | {s:.3f} | {rate:.1f} | {f'{rate / peak:.0%}' if peak else '-'} |")
    if out is not None:
        save_json({"checkpoint": args.checkpoint, "size": args.size, "scale": scale, "flops": flops,
                   "peak_gflops": peak, "peak_estimate": how, "rows": rows}, out, indent=1)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
