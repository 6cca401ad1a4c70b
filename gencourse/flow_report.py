"""The measured tables that Chapter 8 shows in FAST mode, stored with the shipped flow-matching models.

``python -m gencourse.flow_report [--n 2000] [--ship]`` reads the finished training runs
``runs/fm-mnist``, ``runs/fm-mnist-indep-2k`` and ``runs/fm-mnist-class-ot-2k`` (or ``--runs DIR``).
Every setting (sampler, steps, guidance) is sampled once, ``n`` images with labels ``i % 10`` from
the same noise (seed 0), and scored by :func:`gencourse.metrics.evaluate` (FID, KID, IS,
precision/recall/density/coverage, class accuracy). Added to the metrics of ``fm-mnist``:

* ``loss_curve``: the logged training loss (``steps``, ``loss``), from the run's ``state.pt``;
* ``sampler_table_n2000``: one row per (sampler, steps) without guidance, with ``nfe``, ``fid``,
  ``seconds_per_sample`` and ``protocol`` (the format of ``ddpm-mnist``'s table; also class accuracy,
  recall and coverage): Euler at 1-50 network evaluations, midpoint at 4, 8, 16 and 20;
* ``guided_table_n2000``: Euler (NFE 4, 10, 20) and midpoint (NFE 20) with classifier-free guidance at
  the recipe's ``sample_guidance`` (two network passes per evaluation of the field, counted in ``nfe``);
* ``guidance_table_n2000``: Euler with ``sample_steps`` steps at guidance scales 1, 1.25, the recipe's and 2;
* the recipe's own evaluation (``fid``, ``class_accuracy``, ... with its ``protocol``), which is the
  guided row at the recipe's sampler;
* ``ddim_table_n2000``: the shipped ``ddpm-mnist`` model with deterministic DDIM at the same numbers
  of network evaluations, same labels, seed, n and features (and that model's tensor checksum);
* ``report_n`` (the samples per row, part of every table's name), ``report_seconds``,
  ``report_cpu_seconds`` and ``report_hardware``: the cost of measuring them;

and to each 2,000-step model the coupling comparison ``coupling_row``: its straightness (mean over
256 Euler paths of 100 steps from the same noise) and its FID at Euler 2, 4 and 8 steps
(``--coupling-n`` samples, default 1000).

``python -m gencourse.flow_report --seeds 0 1 2 [--n 2000] [--ship]`` instead measures the target's
comparison over noise seeds, on the shipped models (weights unchanged): the best row within 20 network
evaluations of ``sampler_table_n2000`` (:data:`SEED_FM`) and ``ddpm-mnist``'s best DDIM-50 row
(:data:`SEED_DDPM`), each with the starting noise (and DDIM's noise) drawn from every seed; stored as
``seed_table_n2000`` in ``fm-mnist``'s metrics.  Seed 0 reproduces the two tables' rows.

With ``--ship`` the results are written to ``gencourse/assets/weights/``; without it, next to the runs.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from . import checkpoint, diffusion, flow, recipes
from .train_cli import describe_hardware

NFES = (1, 2, 4, 8, 16, 20, 50)
#: (method, steps) without guidance: Euler at every NFE and at the recipe's 10 steps, midpoint at NFE 4-20
SAMPLERS = tuple(("euler", k) for k in (1, 2, 4, 8, 10, 16, 20, 50)) + tuple(("midpoint", k) for k in (2, 4, 8, 10))
#: with guidance (two passes per evaluation): Euler at NFE 4, 10 and 20, midpoint at NFE 20
GUIDED = (("euler", 2), ("euler", 5), ("euler", 10), ("midpoint", 5))
#: guidance scales of the sweep at the recipe's sampler, besides 1 and the recipe's own scale
EXTRA_SCALES = (1.25, 2.0)
COUPLING_STEPS = (2, 4, 8)
#: the seed comparison: fm-mnist's best sampler within 20 NFE, ddpm-mnist's best DDIM-50 row (eta 1)
SEED_FM = ("midpoint", 8)
SEED_DDPM = ("ddim", 50, 1.0)
COUPLING_MODELS = ("fm-mnist-indep-2k", "fm-mnist-class-ot-2k")


def _load(path: Path, name: str):
    ck = checkpoint.load(path)
    recipe = recipes.get(name)
    cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
    modules = recipe.build(recipe.config(**cfg))
    ck.load_into(modules)
    return modules, cfg, ck


def _loss_curve(run_dir: Path) -> dict:
    hist = checkpoint.load(run_dir / "state.pt").state["history"]
    return {"steps": list(hist["steps"]), "loss": [round(float(v), 5) for v in hist["values"]["loss"]]}


def ddim_rows(n: int, device) -> list[dict]:
    """The shipped DDPM with deterministic DDIM at the NFEs of :data:`NFES` (labels i % 10, seed 0)."""
    model, ck = diffusion.load_ema("ddpm-mnist", device)
    with torch.no_grad():
        rows = diffusion.compare_samplers(model, settings=tuple(("ddim", k) for k in NFES), n=n)
    for r in rows:
        r["nfe"] = r["steps"]
        r["model_tensors_sha256"] = ck.meta.get("tensors_sha256", "")[:16]
    return rows


def measure(fm: flow.FlowMatching, dataset: str, method: str, steps: int, guidance: float, n: int,
            seed: int = 0) -> tuple[dict, dict]:
    """``n`` samples (labels i % 10, noise seed ``seed``) with one sampler setting, scored by
    :func:`gencourse.metrics.evaluate`: ``(row, report_dict)``; the row has ``sampler, steps, nfe,
    guidance, fid, class_accuracy, recall, coverage, seconds_per_sample, protocol`` (the FID protocol)."""
    from .metrics import protocol

    labels = torch.arange(n) % 10
    g = torch.Generator(device=fm.device).manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        x = fm.sample(n, labels=labels, guidance_scale=guidance, method=method, steps=steps, generator=g,
                      batch_size=500)
    if fm.device.type == "cuda":
        torch.cuda.synchronize(fm.device)
    sec = time.perf_counter() - t0
    rep = protocol.evaluate(x.cpu(), dataset, labels=labels, device=fm.device, floor=False)
    d = rep.as_dict()
    row = dict(sampler=method, steps=steps, nfe=flow.nfe(method, steps) * (1 if guidance in (0.0, 1.0) else 2),
               guidance=guidance, **{k: round(float(d[k]), 4) for k in ("fid", "class_accuracy", "recall", "coverage")},
               seconds_per_sample=round(sec / n, 5), protocol=rep.protocols()["fid"])
    return row, {"values": {k: round(float(v), 5) for k, v in d.items()}, "protocols": rep.protocols()}


def seed_rows(n: int, seeds, device) -> list[dict]:
    """:data:`SEED_FM` on the shipped fm-mnist and :data:`SEED_DDPM` on the shipped ddpm-mnist, ``n``
    samples each (labels i % 10) from every noise seed: rows ``model, sampler, steps, nfe, seed, fid,
    seconds_per_sample, protocol``."""
    from .flow import load_ema as load_fm

    fm, _ = load_fm("fm-mnist", device)
    ddpm, _ = diffusion.load_ema("ddpm-mnist", device)
    rows = []
    for seed in seeds:
        r, _ = measure(fm, "mnist", *SEED_FM, 1.0, n, seed=seed)
        rows.append({"model": "fm-mnist", "sampler": r["sampler"], "steps": r["steps"], "nfe": r["nfe"], "seed": seed,
                     "fid": r["fid"], "seconds_per_sample": r["seconds_per_sample"], "protocol": r["protocol"]})
        with torch.no_grad():
            d = diffusion.compare_samplers(ddpm, settings=(SEED_DDPM,), n=n, seed=seed)[0]
        rows.append({"model": "ddpm-mnist", "sampler": d["sampler"], "steps": d["steps"], "eta": d["eta"],
                     "nfe": d["steps"], "seed": seed, "fid": d["fid"], "seconds_per_sample": d["seconds_per_sample"],
                     "protocol": d["protocol"]})
        print("  ", {k: v for k, v in rows[-2].items() if k != "protocol"}, "\n  ",
              {k: v for k, v in rows[-1].items() if k != "protocol"}, flush=True)
    return rows


def straightness_of(fm: flow.FlowMatching, *, n: int = 256, steps: int = 100, seed: int = 0) -> float:
    """Mean :func:`gencourse.flow.straightness` of ``n`` Euler paths (labels i % 10, noise seeded)."""
    g = torch.Generator(device=fm.device).manual_seed(seed)
    x0 = torch.randn((n, *fm.image_shape), generator=g, device=g.device).to(fm.device)
    labels = torch.arange(n, device=fm.device) % 10
    with torch.no_grad():
        path = flow.integrate(lambda x, t: fm.velocity(x, t, labels), x0, steps, "euler", trajectory=True)
    return round(float(flow.straightness(path).mean()), 5)


def coupling_row(fm: flow.FlowMatching, cfg: dict, n: int, paths: int = 256) -> dict:
    rows = [measure(fm, cfg["dataset"], "euler", k, 1.0, n)[0] for k in COUPLING_STEPS]
    return {"coupling": cfg["coupling"], "steps_trained": cfg["steps"], "straightness": straightness_of(fm, n=paths),
            **{f"fid_euler{r['steps']}": r["fid"] for r in rows}, "n": n, "protocol": rows[0]["protocol"],
            "straightness_protocol": f"mean of 1 - |x(1) - x(0)| / path length over {paths} Euler paths of 100 steps "
                                     "(labels i % 10, noise seed 0)"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gencourse.flow_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding the three runs (default runs/)")
    p.add_argument("--n", type=int, default=2000, help="samples per table row (default 2000)")
    p.add_argument("--coupling-n", type=int, default=1000, help="samples per FID of the coupling comparison")
    p.add_argument("--paths", type=int, default=256, help="Euler paths for the straightness (default 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ddim-json", type=Path, default=None,
                   help="reuse DDIM rows measured earlier (a JSON file with 'rows', as ddim_rows gives them)")
    p.add_argument("--only", choices=("coupling", "main"), default=None,
                   help="measure only the 2,000-step models or only fm-mnist (two processes can share the work)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                   help="instead: the target's comparison over these noise seeds, on the shipped models")
    p.add_argument("--ship", action="store_true", help="write the results into gencourse/assets/weights/")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.seeds is not None:
        rows = seed_rows(args.n, args.seeds, device)
        path = recipes.weights_path("fm-mnist")
        modules, ck = recipes.load_pretrained("fm-mnist", path=path)
        cfg = {k: v for k, v in ck.config.items() if k != "recipe"}
        suffix = f"; then python -m gencourse.flow_report --seeds {' '.join(map(str, args.seeds))} --n {args.n}"
        command = ck.meta.get("command") or ""
        while command.endswith(suffix):  # a re-run replaces the earlier table, and says so once
            command = command[: -len(suffix)]
        dest = path if args.ship else Path(f"fm-mnist-seeds-n{args.n}.pt")
        recipes.save_pretrained("fm-mnist", modules, cfg, metrics=dict(ck.metrics, **{f"seed_table_n{args.n}": rows}),
                                command=command + suffix, path=dest)
        print(f"wrote {dest}")
        return 0
    # the command as run (the sidecar's "command" must reproduce it)
    suffix = f"; then python -m gencourse.flow_report --n {args.n}"
    suffix += f" --only {args.only}" if args.only else ""
    suffix += f" --coupling-n {args.coupling_n}" if args.only != "main" else ""
    suffix += (f" --ddim-json {args.ddim_json.name} (DDIM rows reused from an earlier report)"
               if args.ddim_json is not None else "")
    t0, c0 = time.perf_counter(), time.process_time()
    for name in COUPLING_MODELS if args.only != "main" else ():
        run = args.runs / name
        modules, cfg, ck = _load(run / f"{name}.pt", name)
        m = dict(ck.metrics, coupling_row=coupling_row(modules["ema"].to(device).eval(), cfg, args.coupling_n,
                                                       args.paths))
        dest = recipes.weights_path(name) if args.ship else run / f"{name}.pt"
        recipes.save_pretrained(name, modules, cfg, metrics=m, command=(ck.meta.get("command") or "") + suffix,
                                path=dest)
        print(name, {k: v for k, v in m["coupling_row"].items() if "protocol" not in k}, flush=True)
    if args.only == "coupling":
        return 0
    run = args.runs / "fm-mnist"
    modules, cfg, ck = _load(run / "fm-mnist.pt", "fm-mnist")
    # the sampling settings are the recipe's current defaults (they do not change training)
    cfg.update({k: v for k, v in recipes.get("fm-mnist").defaults.items() if k.startswith("sample_")})
    fm = modules["ema"].to(device).eval()
    m = dict(ck.metrics, loss_curve=_loss_curve(run))
    s, method, steps = cfg["sample_guidance"], cfg["sample_method"], cfg["sample_steps"]
    plain, guided, own = [], [], None
    for k_method, k_steps in SAMPLERS:
        plain.append(measure(fm, cfg["dataset"], k_method, k_steps, 1.0, args.n)[0])
        print("  ", {k: v for k, v in plain[-1].items() if k != "protocol"}, flush=True)
    for k_method, k_steps in GUIDED:
        row, rep = measure(fm, cfg["dataset"], k_method, k_steps, s, args.n)
        guided.append(row)
        print("  ", {k: v for k, v in row.items() if k != "protocol"}, flush=True)
        if (k_method, k_steps) == (method, steps):
            own = rep
    sweep = [r for r in plain if (r["sampler"], r["steps"]) == (method, steps)]
    sweep += [r for r in guided if (r["sampler"], r["steps"]) == (method, steps)]
    for scale in EXTRA_SCALES:
        sweep.append(measure(fm, cfg["dataset"], method, steps, scale, args.n)[0])
        print("  ", {k: v for k, v in sweep[-1].items() if k != "protocol"}, flush=True)
    m[f"sampler_table_n{args.n}"] = plain
    m[f"guided_table_n{args.n}"] = guided
    m[f"guidance_table_n{args.n}"] = [dict(scale=r["guidance"], **r) for r in sweep]
    if own is not None:                         # the recipe's evaluation = the guided row at its sampler
        m.update(own["values"])
        m["eval_samples"] = args.n
        m["protocol"] = (f"{args.n} samples (labels i % 10, EMA weights, {method} {steps} steps = "
                         f"{flow.nfe(method, steps) * 2} network evaluations with guidance {s:g}, seed 0); "
                         + "; ".join(own["protocols"].values()))
    if args.ddim_json is not None:
        import json

        stored = json.loads(args.ddim_json.read_text())
        if len(stored["rows"]) != len(NFES) or any(r["nfe"] != k for r, k in zip(stored["rows"], NFES)):
            raise SystemExit(f"{args.ddim_json}: expected DDIM rows at NFE {NFES}")
        m[f"ddim_table_n{args.n}"] = stored["rows"]
        m["ddim_table_seconds"] = round(stored["seconds"], 1)
    else:
        m[f"ddim_table_n{args.n}"] = ddim_rows(args.n, device)
    m["report_n"] = args.n
    m["report_seconds"] = round(time.perf_counter() - t0, 1)
    m["report_cpu_seconds"] = round(time.process_time() - c0, 1)
    m["report_hardware"] = describe_hardware(device)
    dest = recipes.weights_path("fm-mnist") if args.ship else run / "fm-mnist.pt"
    recipes.save_pretrained("fm-mnist", modules, cfg, metrics=m, command=(ck.meta.get("command") or "") + suffix,
                            path=dest)
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
