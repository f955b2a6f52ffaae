"""Inference (and training-step) speed of the xrais networks.

    python benchmarks/bench_inference.py [--archs 18:1,18:0.5,18:0.25,34:1,...] [--repeat 5] [--train]
    python benchmarks/bench_inference.py --archs= --models resolution,resolution_resnet,multilattice_resnet

For each architecture (ResNet depth : width): parameters; latency of one quadrant on one CPU core
(``torch.set_num_threads(1)``, batch 1, channels_last, through :class:`xrais.models.XraisModel`);
batched throughput on all the machine's cores; with ``--train``, the time of one training step
per image (forward + backward + AdamW, batch 16, all cores). On a GPU (if present): quadrants/s in
fp32 and bf16/fp16 at batch 64. With ``--models``, the same CPU figures for registered models
(the shipped shell-profile ``resolution`` model included: its time is the features' — the shell
histogram of the quadrant — and the network's; its per-geometry shell map is cached, as for the
frames of one series). Times are the best of ``--repeat`` runs after a warm-up. Target for the
shipped models: ≤ 50 ms per quadrant on one core.
"""
import argparse
import os

import torch

from xrais.models import Architecture, XraisModel, XraisNet, cpu_seconds_per_quadrant, load, parameter_count

from timing import best_seconds

TARGET_MS = 50.0
DEFAULT_ARCHS = "18:1,18:0.5,18:0.25,34:1,34:0.5,34:0.25,50:1,50:0.5,50:0.25"
GEOMETRY = {"wavelength": 0.9795, "distance": 250.0, "pixel_size": 0.172, "downsample": 2}


def cpu_inference(architecture: Architecture, threads: int, batch: int, repeat: int) -> float:
    """Seconds per quadrant."""
    model = XraisModel(XraisNet(architecture), device="cpu", batch_size=batch)
    return cpu_seconds_per_quadrant(model, threads=threads, batch=batch, repeat=repeat)


def cpu_training_step(architecture: Architecture, threads: int, batch: int, repeat: int) -> float:
    """Seconds per image of one optimisation step."""
    torch.set_num_threads(threads)
    network = XraisNet(architecture).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    images = torch.rand(batch, 1, 512, 512).mul(30).contiguous(memory_format=torch.channels_last)
    geometry = torch.tensor([[0.9795, 250.0, 0.172, 2.0]] * batch)
    target = torch.full((batch,), 0.5)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(network(images, geometry), target).backward()
        optimizer.step()

    return best_seconds(step, repeat)[0] / batch


def gpu_throughput(architecture: Architecture, precision: str, batch: int, repeat: int) -> float:
    """Quadrants per second on the first GPU (input already on the GPU)."""
    model = XraisModel(XraisNet(architecture), device="cuda", precision=precision, batch_size=batch)
    quadrants = torch.rand(batch, 512, 512, device="cuda").mul(30)

    def run():
        model.predict(quadrants, GEOMETRY)
        torch.cuda.synchronize()

    return batch / best_seconds(run, repeat)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=DEFAULT_ARCHS, help="depth:width list (default: %(default)s)")
    parser.add_argument("--models", default="", help="registered model names to time as well (e.g. resolution)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="CPU batch for throughput and training")
    parser.add_argument("--train", action="store_true", help="also time a training step on the CPU")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    gpu = torch.cuda.is_available()
    half = "bf16" if gpu and torch.cuda.is_bf16_supported() else "fp16"
    header = ["architecture", "parameters", "1 core ms/quadrant", f"{cores} cores quadrants/s"]
    header += [f"train ms/image ({cores} cores)"] if args.train else []
    header += ["GPU fp32 quadrants/s", f"GPU {half} quadrants/s"] if gpu else []
    print(f"torch {torch.__version__}, {cores} CPU cores" + (f", GPU {torch.cuda.get_device_name(0)}" if gpu else ""))
    rows = []
    for name in filter(None, args.models.split(",")):
        model = load(name, device="cpu")
        one_core = 1e3 * cpu_seconds_per_quadrant(model, threads=1, batch=1, repeat=args.repeat)
        model.batch_size = args.batch
        row = [f"model {name} ({model.network.architecture.label})", f"{parameter_count(model.network):,}",
               f"{one_core:.1f}{'' if one_core <= TARGET_MS else ' (>50)'}",
               f"{1.0 / cpu_seconds_per_quadrant(model, threads=cores, batch=args.batch, repeat=args.repeat):.1f}"]
        row += ["-"] * (len(header) - len(row))
        rows.append(row)
        print("  measured", row[0], flush=True)
    for item in filter(None, args.archs.split(",")):
        depth, width = item.split(":")
        architecture = Architecture("resolution", depth=int(depth), width=float(width))
        one_core = 1e3 * cpu_inference(architecture, 1, 1, args.repeat)
        row = [architecture.label.split(" (")[0], f"{parameter_count(XraisNet(architecture)):,}",
               f"{one_core:.1f}{'' if one_core <= TARGET_MS else ' (>50)'}",
               f"{1.0 / cpu_inference(architecture, cores, args.batch, args.repeat):.1f}"]
        if args.train:
            row.append(f"{1e3 * cpu_training_step(architecture, cores, args.batch, max(2, args.repeat // 2)):.1f}")
        if gpu:
            row += [f"{gpu_throughput(architecture, p, 64, args.repeat):.0f}" for p in ("fp32", half)]
        rows.append(row)
        print("  measured", row[0], flush=True)
    widths = [max(len(str(r[k])) for r in rows + [header]) for k in range(len(header))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print(f"\ntarget for the shipped models: ≤ {TARGET_MS:.0f} ms per quadrant on one core")


if __name__ == "__main__":
    main()
