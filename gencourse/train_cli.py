"""``python -m gencourse train``: long, resumable training runs of the course's recipes.

Files in the output folder (``--out``, default ``runs/MODEL``):

* ``state.pt``: everything needed to resume (weights, optimizers, step, history,
  data position, RNG state), rewritten atomically every ``--save-every`` steps,
  at the end, and when the run is interrupted;
* ``MODEL.pt``: the final weights with their config and metrics (the format of
  the shipped checkpoints, loadable with ``recipes.load_pretrained``);
* ``metrics.json``: the final metrics and run summary.

``--ship`` also copies ``MODEL.pt`` and its ``.json`` into the package's
``assets/weights/`` folder, where the notebooks' ``recipes.load_pretrained``
finds them; the recorded command is then exactly how the shipped file was made.

Data parallelism: under ``torchrun --nproc_per_node=N -m gencourse train ...``
each process trains a copy (NCCL on GPUs, gloo on the CPU) that starts from rank
0's weights; the Trainer averages every update's gradients over the processes and
batch norm uses the statistics of the global batch (:mod:`gencourse.train.distributed`),
so N processes compute what one process computes with the global batch, up to each
rank's own random draws.  The recipe's data function gets ``rank`` and ``world_size``
and shards the device-resident batches (``config["batch_size"]`` is the *global*
batch); only rank 0 prints and writes files.  Learning rates are used as
configured, not scaled.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from . import checkpoint, recipes, utils
from .train import NonFiniteLossError



def _error(message: str) -> utils.UsageError:
    return utils.UsageError(message)


def describe_hardware(device: torch.device, world: int = 1) -> str:
    """A short description of what trained the model: GPU name(s), or CPU model, cores and torch threads."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{world} x {name}" if world > 1 else name
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    procs = f"{world} processes x " if world > 1 else ""
    return f"{cpu}, {os.cpu_count()} cores, {procs}{torch.get_num_threads()} torch thread(s), no GPU"


def _say(msg: str, rank: int = 0) -> None:
    if rank == 0:
        print(msg, flush=True)


def _init_distributed(device_arg: str):
    """(rank, world_size, local_rank, device, owned) from torchrun's environment; initialises the
    process group unless the caller already has (``owned``: whether this call did, so :func:`run`
    destroys only a group it made; several runs in one launch then share one group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0, None, False
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_arg != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, local, torch.device("cuda", local) if use_cuda else torch.device("cpu"), owned


def _check_out_folder(out: Path) -> None:
    """Fail before training when ``out`` cannot hold the run's files; remove the temporary files a
    killed save left behind (``.state.pt.*.tmp``)."""
    if out.exists() and not out.is_dir():
        raise _error(f"--out {out}: expected a folder, got an existing file; fix: choose another --out")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise _error(f"--out {out}: expected a folder, but {parent} is a file; fix: choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _error(f"--out {out}: expected a writable folder, but {parent} is not writable; "
                     "fix: choose another --out")
    if out.is_dir():
        for tmp in sorted(set(out.glob(".*.pt.*.tmp"))):
            try:
                size = tmp.stat().st_size
                tmp.unlink()
                print(f"removed {tmp} ({size / 1e6:.1f} MB), left by an interrupted save", file=sys.stderr)
            except OSError:
                pass


def _stale_sidecar(state_path: Path):
    """The run's own state.pt, when only its sidecar is wrong: a save killed between writing the .pt and
    its .json leaves the previous sidecar.  The .pt is trusted when its tensors and metadata pass their
    own SHA-256 checks; the sidecar is then rewritten.  None when the .pt itself fails."""
    try:
        ck = checkpoint.load(state_path, check_sidecar=False)
    except checkpoint.CheckpointError:
        return None
    if "meta_sha256" not in ck.meta:  # an old file: its metadata has no checksum of its own
        return None
    checkpoint.write_sidecar(state_path)
    print(f"{state_path}.json did not describe {state_path.name} (a save interrupted between the two files?); "
          f"{state_path.name} passes its own checksums, so the sidecar was rewritten from it", file=sys.stderr)
    return ck


def run(args) -> int:
    rank, world, local, dist_device, owned = _init_distributed(args.device)
    try:
        return _run(args, rank, world, local, dist_device, owned)
    finally:
        import torch.distributed as dist

        if owned and dist.is_initialized():  # _run may have left it already
            dist.destroy_process_group()


def _run(args, rank: int, world: int, local: int, dist_device, owned: bool = False) -> int:
    try:
        recipe = recipes.get(args.model)
    except KeyError as err:
        raise _error(str(err).strip("'\"")) from None
    if args.steps is not None and args.steps <= 0:
        raise _error(f"--steps must be a positive number of steps, got {args.steps}")
    if args.minutes is not None and not args.minutes > 0:
        raise _error(f"--minutes must be positive, got {args.minutes}")
    if args.save_every <= 0 or args.log_every <= 0:
        raise _error("--save-every and --log-every must be positive")
    if args.seed < 0:
        raise _error(f"--seed: expected an integer >= 0, got {args.seed}; fix: e.g. --seed 0")
    ship_as = getattr(args, "ship_as", None)
    if ship_as is not None and not getattr(args, "ship", False):
        raise _error("--ship-as NAME only makes sense with --ship")
    if ship_as is not None and (not ship_as or "/" in ship_as or ship_as.endswith(".pt")):
        raise _error(f"--ship-as takes a bare file name without folder or .pt (e.g. {args.model}-seed1), got {ship_as!r}")

    overrides = dict(getattr(args, "overrides", {}) or {})
    if args.dataset is not None:
        overrides["dataset"] = args.dataset
    out = args.out if args.out is not None else Path("runs") / args.model
    state_path = out / "state.pt"
    _check_out_folder(out)

    resumed = None
    if args.resume:
        if not state_path.is_file():
            raise _error(f"--resume: there is no {state_path} to resume (train without --resume first)")
        try:
            resumed = checkpoint.load(state_path)
        except checkpoint.CheckpointError as err:
            resumed = _stale_sidecar(state_path)
            if resumed is None:
                raise _error(f"--resume: {err}") from None
        saved_recipe = resumed.config.get("recipe")
        if saved_recipe is not None and saved_recipe != args.model:
            raise _error(f"--resume: {state_path} is a run of {saved_recipe}, not {args.model}; continue it with "
                         f"`python -m gencourse train {saved_recipe} --resume --out {out}`, or train {args.model} "
                         "into another --out")
        saved = {k: v for k, v in resumed.config.items() if k != "recipe"}
        changed = {k: (saved.get(k), v) for k, v in overrides.items() if saved.get(k) != v}
        clash = {k: ov for k, ov in changed.items() if not recipes.resume_changeable(k)}
        if clash:
            raise _error(f"--resume continues the saved run; these settings differ from it: {clash} "
                         "(only learning rates and grad_clip may change on --resume)")
        overrides = dict(saved, **{k: new for k, (old, new) in changed.items()})
    elif state_path.exists():
        raise _error(f"{state_path} exists: pass --resume to continue that run, or choose another --out")
    try:
        cfg = recipe.config(**overrides)
    except ValueError as err:
        raise _error(str(err)) from None

    try:
        device = dist_device or utils.get_device(args.device)
    except (RuntimeError, ValueError) as err:
        raise _error(str(err)) from None
    utils.configure_device(device)  # TF32 and cudnn.benchmark on CUDA
    if "batch_size" in cfg and cfg["batch_size"] % world:
        raise _error(f"the global batch_size {cfg['batch_size']} must be divisible by the {world} processes")
    amp = getattr(args, "amp", "auto")
    amp = False if amp == "off" else amp
    try:
        from .train import amp_dtype

        amp_dtype(device, amp)
    except ValueError as err:
        raise _error(str(err)) from None
    utils.seed_everything(args.seed + rank)  # the Trainer copies rank 0's initial weights to every rank
    try:
        trainer, modules, cfg = recipes.build_trainer(
            args.model, cfg, device=device, rank=rank, world_size=world, log_every=args.log_every,
            progress="auto", amp=amp)
    except Exception as err:  # e.g. the dataset cannot be loaded
        raise _error(f"could not set up {args.model}: {type(err).__name__}: {err}") from None
    resumed_at = None
    if resumed is not None:
        fresh_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in trainer.optimizers.items()}
        trainer.load_state_dict(resumed.state)
        resumed_at = trainer.step
        _say(f"resuming {args.model} from step {trainer.step} ({state_path})")
        if changed:
            for k, o in trainer.optimizers.items():  # the saved optimizer state carries the old rates
                for g, lr in zip(o.param_groups, fresh_lrs[k]):
                    g["lr"] = lr
            trainer.history.events.append({"step": trainer.step, "event": "resumed with changed settings",
                                           "changed": {k: [old, new] for k, (old, new) in changed.items()}})
            _say(f"changed on resume: {', '.join(f'{k} {old} -> {new}' for k, (old, new) in changed.items())}")

    total = args.steps if args.steps is not None else (None if args.minutes else cfg.get("steps"))
    if total is None and args.minutes is None:
        raise _error(f"{args.model} has no default number of steps: give --steps or --minutes")
    command = "python -m gencourse " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0] else None

    def save_state():
        if rank == 0:  # one writer; the other ranks hold identical weights
            checkpoint.save(state_path, trainer.state_dict(), config=dict(cfg, recipe=args.model), command=command)

    trainer.stop_signals = ("SIGINT", "SIGTERM")  # a scheduler's SIGTERM saves like Ctrl-C, then exits 143

    _say(f"training {args.model} on {device} ({'until step ' + str(total) if total else f'{args.minutes} min'}); "
         f"config {json.dumps(cfg)}", rank)
    if world > 1:
        lr = cfg.get("lr", "as configured")
        _say(f"data parallel: {world} processes ({'nccl' if device.type == 'cuda' else 'gloo'}), global batch "
             f"{cfg.get('batch_size', '?')} = {world} x {cfg.get('batch_size', 0) // world}, learning rate {lr} "
             "(not scaled with the batch)", rank)
    deadline = time.perf_counter() + 60 * args.minutes if args.minutes else None
    status = 0
    try:
        while True:
            left = None if total is None else total - trainer.step
            if left is not None and left <= 0:
                break
            seconds = None if deadline is None else deadline - time.perf_counter()
            if seconds is not None and seconds <= 0:
                break
            chunk = args.save_every if left is None else min(args.save_every, left)
            trainer.fit(steps=chunk, seconds=seconds)
            save_state()
            if trainer.history.interrupted:
                _say(f"interrupted ({trainer.stopped_by}) at step {trainer.step}; saved {state_path}. "
                     "Continue with --resume.", rank)
                return 143 if trainer.stopped_by == "SIGTERM" else 130
    except NonFiniteLossError as err:
        try:
            save_state()
        except checkpoint.CheckpointError as save_err:
            print(f"error: {err}\nerror: {save_err}", file=sys.stderr)
            return 1
        if rank == 0:
            print(f"error: {err}\nThe last good state is in {state_path}.", file=sys.stderr)
        return 1
    except checkpoint.CheckpointError as err:  # e.g. the disk is full: the previous state.pt is intact
        print(f"error: {err}", file=sys.stderr)
        return 1
    if world > 1:  # training is over and saved; rank 0 evaluates alone, outside the process group
        import torch.distributed as dist

        dist.barrier()
        if owned:  # torchmetrics would otherwise try to gather its states from ranks that have left
            dist.destroy_process_group()
    if rank != 0:
        return 0

    metrics = {"steps": trainer.step, "train_seconds": round(trainer.seconds, 1)}
    for k, v in trainer.history.values.items():
        if v:
            metrics[f"final_{k}"] = v[-1]
    if recipe.evaluate is not None and not args.no_eval:
        for m in modules.values():
            m.eval()
        with torch.no_grad():
            metrics.update(recipe.evaluate(modules, cfg, device))
    metrics["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    metrics["world_size"] = world
    metrics["amp"] = str(trainer.dtype).replace("torch.", "") + " autocast" if trainer.dtype else "float32"
    metrics["hardware"] = getattr(args, "hardware", None) or describe_hardware(device, world)
    metrics["cpu_seconds"] = round(time.process_time(), 1)  # this process, training and evaluation
    if resumed_at is not None:
        metrics["resumed_from_step"] = resumed_at  # cpu_seconds covers this process only
    try:
        recipes.save_pretrained(args.model, modules, cfg, metrics=metrics, command=command,
                                path=out / f"{args.model}.pt")
    except checkpoint.CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _say(f"done: {out / (args.model + '.pt')}  metrics: {json.dumps(metrics)}")
    if getattr(args, "ship", False):
        import shutil

        recipes.WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        dest = ship_as or args.model
        for suffix in (".pt", ".pt.json"):
            try:
                shutil.copyfile(out / f"{args.model}{suffix}", recipes.WEIGHTS_DIR / f"{dest}{suffix}")
            except OSError as err:
                print(f"error: could not ship {recipes.WEIGHTS_DIR / (dest + suffix)}: {err.strerror or err}; "
                      f"the run's files are in {out}", file=sys.stderr)
                return 1
        _say(f"shipped: {recipes.WEIGHTS_DIR / (dest + '.pt')}")
    return status
