"""The measured tables that Chapter 8 shows in FAST mode, stored with the shipped flow-matching models.

``python -m gencourse.flow_report [--n 2000] [--ship]`` reads the finished training runs
``runs/fm-mnist``, ``runs/fm-mnist-ot-2k`` and ``runs/fm-mnist-indep-2k`` (or ``--runs DIR``) and
adds to the metrics of ``fm-mnist``:

* ``loss_curve``: the logged training loss (``steps``, ``loss``), from the run's ``state.pt``;
* ``sampler_table_n2000``: :func:`gencourse.flow.compare_samplers` at ``n`` samples per row, one row
  per (sampler, steps) with ``nfe``, ``fid``, ``seconds_per_sample`` and ``protocol`` (Euler and
  midpoint at 1-50 network evaluations), in the format of ``ddpm-mnist``'s table;
* ``guided_table_n2000``: the same with classifier-free guidance at the recipe's ``sample_guidance``
  (each step then costs two network passes, counted in ``nfe``);
* ``guidance_table_n2000``: Euler with ``sample_steps`` steps at guidance scales 1 to 3: FID, class
  accuracy, recall and coverage (:func:`guidance_rows`);
* the recipe's own evaluation (``fid``, ``class_accuracy``, ... with its protocol) at its sampler;
* ``ddim_table_n2000``: the shipped ``ddpm-mnist`` model with deterministic DDIM at the same numbers
  of network evaluations, same labels, seed, n and features (and that model's tensor checksum);
* ``report_seconds``, ``report_cpu_seconds`` and ``report_hardware``: the cost of measuring them;

and to each 2,000-step model the coupling comparison ``coupling_row``: its straightness (mean over
256 Euler paths of 100 steps from the same noise) and its FID at Euler 2, 4, 8 and 20 steps.

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
#: (method, steps) of the sampler table: Euler at every NFE, midpoint (2 evaluations per step) where even
SAMPLERS = tuple(("euler", k) for k in NFES) + tuple(("midpoint", k // 2) for k in NFES if k % 2 == 0)
#: the same NFEs with classifier-free guidance, which costs two network passes per evaluation of the field
GUIDED = tuple(("euler", k // 2) for k in NFES if k % 2 == 0) + tuple(("midpoint", k // 4) for k in NFES if k % 4 == 0)
COUPLING_STEPS = (2, 4, 8, 20)
COUPLING_MODELS = ("fm-mnist-ot-2k", "fm-mnist-indep-2k")


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


GUIDANCE_SCALES = (1.0, 1.25, 1.5, 1.75, 2.0, 3.0)


def guidance_rows(fm: flow.FlowMatching, cfg: dict, n: int, scales=GUIDANCE_SCALES, seed: int = 0) -> list[dict]:
    """For each guidance scale: ``n`` samples (labels i % 10, the same noise) with the recipe's sampler,
    scored by :func:`gencourse.metrics.evaluate` (FID, class accuracy, recall, coverage)."""
    from . import metrics

    labels = torch.arange(n) % 10
    rows = []
    for s in scales:
        g = torch.Generator(device=fm.device).manual_seed(seed)
        with torch.no_grad():
            x = fm.sample(n, labels=labels, guidance_scale=s, method=cfg["sample_method"], steps=cfg["sample_steps"],
                          generator=g, batch_size=500).cpu()
        rep = metrics.evaluate(x, cfg["dataset"], labels=labels, device=fm.device, floor=False)
        d = rep.as_dict()
        rows.append(dict(scale=s, sampler=cfg["sample_method"], steps=cfg["sample_steps"],
                         nfe=flow.nfe(cfg["sample_method"], cfg["sample_steps"]) * (1 if s in (0.0, 1.0) else 2),
                         **{k: round(float(d[k]), 4) for k in ("fid", "class_accuracy", "recall", "coverage")},
                         protocol=" | ".join(rep.protocols().values())))
    return rows


def straightness_of(fm: flow.FlowMatching, *, n: int = 256, steps: int = 100, seed: int = 0) -> float:
    """Mean :func:`gencourse.flow.straightness` of ``n`` Euler paths (labels i % 10, noise seeded)."""
    g = torch.Generator(device=fm.device).manual_seed(seed)
    x0 = torch.randn((n, *fm.image_shape), generator=g, device=g.device).to(fm.device)
    labels = torch.arange(n, device=fm.device) % 10
    with torch.no_grad():
        path = flow.integrate(lambda x, t: fm.velocity(x, t, labels), x0, steps, "euler", trajectory=True)
    return round(float(flow.straightness(path).mean()), 5)


def coupling_row(fm: flow.FlowMatching, cfg: dict, n: int) -> dict:
    with torch.no_grad():
        rows = flow.compare_samplers(fm, settings=tuple(("euler", k) for k in COUPLING_STEPS), n=n)
    return {"coupling": cfg["coupling"], "steps_trained": cfg["steps"], "straightness": straightness_of(fm),
            **{f"fid_euler{r['steps']}": r["fid"] for r in rows}, "protocol": rows[0]["protocol"],
            "straightness_protocol": "mean of 1 - |x(1) - x(0)| / path length over 256 Euler paths of 100 steps "
                                     "(labels i % 10, noise seed 0)"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gencourse.flow_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding the three runs (default runs/)")
    p.add_argument("--n", type=int, default=2000, help="samples per table row (default 2000)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ship", action="store_true", help="write the results into gencourse/assets/weights/")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    suffix = f"; then python -m gencourse.flow_report --n {args.n}"
    t0, c0 = time.perf_counter(), time.process_time()
    for name in COUPLING_MODELS:
        run = args.runs / name
        modules, cfg, ck = _load(run / f"{name}.pt", name)
        m = dict(ck.metrics, coupling_row=coupling_row(modules["ema"].to(device).eval(), cfg, args.n))
        dest = recipes.weights_path(name) if args.ship else run / f"{name}.pt"
        recipes.save_pretrained(name, modules, cfg, metrics=m, command=(ck.meta.get("command") or "") + suffix,
                                path=dest)
        print(name, {k: v for k, v in m["coupling_row"].items() if "protocol" not in k}, flush=True)
    run = args.runs / "fm-mnist"
    modules, cfg, ck = _load(run / "fm-mnist.pt", "fm-mnist")
    # the sampling settings are the recipe's current defaults (they do not change training)
    cfg.update({k: v for k, v in recipes.get("fm-mnist").defaults.items() if k.startswith("sample_")})
    fm = modules["ema"].to(device).eval()
    m = dict(ck.metrics, loss_curve=_loss_curve(run))
    s = cfg["sample_guidance"]
    with torch.no_grad():
        m[f"sampler_table_n{args.n}"] = flow.compare_samplers(fm, settings=SAMPLERS, n=args.n)
        m[f"guided_table_n{args.n}"] = flow.compare_samplers(fm, settings=GUIDED, n=args.n, guidance_scale=s)
        m[f"guidance_table_n{args.n}"] = guidance_rows(fm, cfg, args.n)
        modules_eval = {k: v.to(device).eval() for k, v in modules.items()}
        m.update(recipes.get("fm-mnist").evaluate(modules_eval, cfg, device))
    m[f"ddim_table_n{args.n}"] = ddim_rows(args.n, device)
    m["report_seconds"] = round(time.perf_counter() - t0, 1)
    m["report_cpu_seconds"] = round(time.process_time() - c0, 1)
    m["report_hardware"] = describe_hardware(device)
    dest = recipes.weights_path("fm-mnist") if args.ship else run / "fm-mnist.pt"
    recipes.save_pretrained("fm-mnist", modules, cfg, metrics=m, command=(ck.meta.get("command") or "") + suffix,
                            path=dest)
    for key in (f"sampler_table_n{args.n}", f"guided_table_n{args.n}", f"guidance_table_n{args.n}",
                f"ddim_table_n{args.n}"):
        print(key)
        for row in m[key]:
            print("  ", {k: v for k, v in row.items() if k != "protocol"})
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
