"""fp16 autocast with a gradient scaler on the CPU: the T4's code path, run where there is no GPU
(issue 20, item 2).  Every registered recipe trains with ``--amp fp16 --device cpu``, a GAN with
two generator updates per step, and the Trainer's scaler handles any number of updates per step."""
import json
import math

import pytest
import torch
from torch import nn

from gencourse import checkpoint, recipes
from gencourse.train import Trainer, adam


def _train(name, out, *sets, monkeypatch):
    from gencourse.__main__ import main

    monkeypatch.setenv("GENCOURSE_PROGRESS", "off")
    settings = [f"{k}={json.dumps(v)}" for k, v in recipes.smoke_settings(name).items()]
    code = main(["train", name, "--steps", "3", "--amp", "fp16", "--device", "cpu", "--no-eval", "--log-every", "1",
                 "--out", str(out), "--set", *settings, *sets])
    assert code == 0, name
    return json.loads((out / "metrics.json").read_text()), checkpoint.load(out / "state.pt").state


@pytest.mark.slow
@pytest.mark.parametrize("name", recipes.course_names())
def test_every_recipe_trains_in_fp16_with_a_grad_scaler_on_the_cpu(name, tmp_path, monkeypatch):
    metrics, state = _train(name, tmp_path / name, monkeypatch=monkeypatch)
    assert metrics["amp"] == "float16 autocast" and metrics["steps"] == 3
    finals = {k: v for k, v in metrics.items() if k.startswith("final_")}
    assert finals and all(math.isfinite(v) for v in finals.values()), finals
    assert "scaler" in state and state["scaler"]["scale"] > 0  # the scaler ran and is saved for --resume


@pytest.mark.slow
def test_gan_with_two_generator_updates_per_step_in_fp16(tmp_path, monkeypatch):
    """g_steps=2 steps the generator's optimizer twice per Trainer step (it raised "step() has
    already been called since the last update()" when the scaler was updated once per step)."""
    metrics, state = _train("dcgan-mnist", tmp_path / "g2", "g_steps=2", monkeypatch=monkeypatch)
    assert math.isfinite(metrics["final_g_loss"])
    steps = [s["step"] for s in state["optimizers"]["g"]["state"].values()]
    # 6 generator updates; fused Adam does not count one the scaler skipped for overflow
    assert steps and all(1 <= float(s) <= 6 for s in steps)


def test_scaler_updates_after_each_optimize_and_allows_steps_without_one():
    """Two updates of one optimizer in one step, and steps with none (it raised "No inf checks were
    recorded"). At the initial scale 2^16 the first update overflows fp16 (the output's gradient
    1.5 x 2^16 is past fp16's 65504): it is skipped and the scale halves *before* the second
    update of the same step, which then moves the weights (1.5 x 2^15 fits)."""
    torch.manual_seed(0)
    model = nn.Linear(4, 4)
    opt = adam(model.parameters(), lr=0.01)
    w0 = model.weight.detach().clone()
    seen = []

    def step(x, trainer):
        out = {}
        if trainer.step % 2 == 0:  # odd steps make no update at all
            for i in range(2):
                loss = 1.5 * model(x).float().sum()  # d loss / d output = 1.5, fp16 output
                trainer.optimize(loss, opt)
                seen.append((trainer.scaler.get_scale(), torch.equal(model.weight.detach(), w0)))
            out["loss"] = loss
        return out

    trainer = Trainer(step, lambda: torch.ones(1, 4), modules=model, optimizers=opt, amp="fp16",
                      log_every=1, progress=False)
    assert trainer.dtype is torch.float16 and trainer.scaler is not None
    trainer.fit(steps=4)
    assert seen[0] == (2.0 ** 15, True)    # overflowed: skipped, scale halved
    assert seen[1] == (2.0 ** 15, False)   # the second update of the same step went through
    assert len(seen) == 4 and trainer.step == 4
