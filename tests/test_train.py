import math

import pytest
import torch
from torch import nn

from gencourse import data
from gencourse.train import History, NonFiniteLossError, Trainer, adam, amp_dtype, sgd


def regression_problem(gen, n=256):
    x = torch.randn(n, 3, generator=gen)
    w_true = torch.tensor([[1.5], [-2.0], [0.5]])
    y = x @ w_true + 0.3 + 0.01 * torch.randn(n, 1, generator=gen)
    return x, y


def make_step(model, opt):
    def step(batch, trainer):
        x, y = batch
        loss = ((model(x) - y) ** 2).mean()
        trainer.optimize(loss, opt)
        return {"loss": loss}
    return step


def test_trainer_reaches_least_squares_solution(gen):
    x, y = regression_problem(gen)
    model = nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    trainer = Trainer(make_step(model, opt), data.BatchIterator(x, y, batch_size=64, seed=0),
                      modules=model, optimizers=opt, log_every=10, progress=False)
    hist = trainer.fit(steps=600)
    # reference: the closed-form least-squares fit with an intercept
    X = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    sol = torch.linalg.lstsq(X, y.double()).solution.squeeze()
    got = torch.cat([model.weight.detach().squeeze(), model.bias.detach()]).double()
    assert torch.allclose(got, sol, atol=5e-3)
    assert trainer.step == 600 and hist.steps[-1] == 600 and len(hist) == 60
    assert hist["loss"][-1] < 0.01 * hist["loss"][0]


def test_history_averages_each_log_interval():
    model = nn.Linear(1, 1)

    def step(batch, trainer):
        return {"value": torch.tensor(float(trainer.step + 1))}  # 1, 2, 3, ...

    trainer = Trainer(step, lambda: None, modules=model, log_every=4, progress=False)
    hist = trainer.fit(steps=10)
    # intervals: steps 1-4, 5-8, 9-10 -> means 2.5, 6.5, 9.5
    assert hist.steps == [4, 8, 10] and hist["value"] == [2.5, 6.5, 9.5]
    trainer.fit(steps=2)  # fit continues the same run
    assert hist.steps[-1] == 12 and hist.last("value") == 11.5
    rt = History.from_dict(hist.to_dict())
    assert rt.values == hist.values and rt.steps == hist.steps


def test_seconds_budget_stops():
    model = nn.Linear(1, 1)
    trainer = Trainer(lambda b, t: {"x": torch.zeros(())}, lambda: None, modules=model, progress=False)
    trainer.fit(seconds=0.2)
    assert trainer.step > 0 and 0.2 <= trainer.seconds < 5


def test_bad_budget_and_step_output():
    model = nn.Linear(1, 1)
    trainer = Trainer(lambda b, t: 1.0, lambda: None, modules=model, progress=False)
    with pytest.raises(ValueError, match="give a budget"):
        trainer.fit()
    with pytest.raises(ValueError, match="non-negative"):
        trainer.fit(steps=-3)
    with pytest.raises(TypeError, match="dict of scalar tensors"):
        trainer.fit(steps=1)


def test_nan_stops_with_message_and_keeps_last_good_weights(gen):
    x, y = regression_problem(gen)
    batches = data.BatchIterator(x, y, batch_size=32, seed=0)

    def run(n_steps, poison_at=None):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        inner = make_step(model, opt)

        def step(batch, trainer):
            out = inner(batch, trainer)
            if poison_at is not None and trainer.step + 1 >= poison_at:
                with torch.no_grad():
                    model.weight.fill_(float("nan"))
                return {"loss": torch.tensor(float("nan"))}
            return out

        trainer = Trainer(step, batches, modules=model, optimizers=opt, log_every=5, progress=False)
        trainer.data_epoch = 0
        return trainer, model, lambda: trainer.fit(steps=n_steps)

    reference, ref_model, fit = run(10)
    fit()
    trainer, model, fit = run(20, poison_at=13)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan between steps 11 and 15.*restored to step 10"):
        fit()
    assert torch.isfinite(model.weight).all()
    assert torch.equal(model.weight, ref_model.weight) and torch.equal(model.bias, ref_model.bias)


def test_ctrl_c_returns_partial_model_and_history(gen):
    x, y = regression_problem(gen)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    inner = make_step(model, opt)
    before = model.weight.detach().clone()

    def step(batch, trainer):
        out = inner(batch, trainer)
        if trainer.step + 1 == 23:
            # Ctrl-C (or "interrupt kernel") makes Python raise KeyboardInterrupt in the running code; raised
            # here directly, because a SIGINT sent to a pytest-xdist worker is not reliably turned into one
            raise KeyboardInterrupt
        return out

    trainer = Trainer(step, data.BatchIterator(x, y, batch_size=32), modules=model, optimizers=opt,
                      log_every=10, progress=False)
    hist = trainer.fit(steps=1000)
    assert hist.interrupted
    assert 22 <= trainer.step < 1000  # the interrupted step may not be counted
    assert hist.steps[-1] == trainer.step  # the partial interval was logged too
    assert not torch.equal(model.weight, before)


def test_resume_from_state_dict_equals_one_run(gen):
    x, y = regression_problem(gen)

    def fresh():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))  # dropout uses the global RNG
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        t = Trainer(make_step(model, opt), data.BatchIterator(x, y, batch_size=48, seed=3),
                    modules=model, optimizers=opt, log_every=4, progress=False)
        return t, model

    one, m1 = fresh()
    one.fit(steps=14)
    a, _ = fresh()
    a.fit(steps=7)
    state = a.state_dict()
    b, m2 = fresh()
    torch.manual_seed(999)  # whatever happened in between
    b.load_state_dict(state)
    b.fit(steps=7)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert b.step == 14 and b.history.steps[-1] == 14


def test_amp_dtype_on_cpu_is_full_precision_unless_asked_for():
    assert amp_dtype(torch.device("cpu")) is None
    assert amp_dtype(torch.device("cpu"), True) is None
    assert amp_dtype(torch.device("cpu"), False) is None
    assert amp_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    assert amp_dtype(torch.device("cpu"), "fp16") is torch.float16  # the T4 path, emulated
    assert amp_dtype(torch.device("cuda"), False) is None
    with pytest.raises(ValueError, match="CUDA or the CPU"):
        amp_dtype(torch.device("meta"), "fp16")
    with pytest.raises(ValueError, match="'auto', True, False"):
        amp_dtype(torch.device("cuda"), "int8")


def test_bf16_autocast_on_the_cpu_still_reaches_least_squares_solution(gen):
    """amp="bf16" on the CPU: forward in bf16, fp32 master weights; the fit lands on the closed form
    to bf16's resolution (8 bits of mantissa: ~0.4% relative)."""
    x, y = regression_problem(gen)
    model = nn.Linear(3, 1)
    opt = adam(model.parameters(), lr=0.05)
    trainer = Trainer(make_step(model, opt), data.BatchIterator(x, y, batch_size=64, seed=0),
                      modules=model, optimizers=opt, log_every=10, progress=False, amp="bf16")
    assert trainer.dtype is torch.bfloat16
    trainer.fit(steps=600)
    assert model.weight.dtype is torch.float32
    X = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    sol = torch.linalg.lstsq(X, y.double()).solution.squeeze()
    got = torch.cat([model.weight.detach().squeeze(), model.bias.detach()]).double()
    assert torch.allclose(got, sol, atol=3e-2)
    assert not torch.allclose(got, sol, atol=1e-7)  # it did run in reduced precision, not in fp64


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_helper_matches_torch_adam(decoupled):
    """gencourse.train.adam (fused where available) takes the same steps as torch's default Adam/AdamW."""
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    w0 = a.weight.detach().clone()
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ref = cls(a.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=0.1, foreach=False)
    ours = adam(b.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=0.1, decoupled=decoupled)
    assert isinstance(ours, cls)
    x = torch.randn(32, 5)
    for _ in range(20):
        for m, o in ((a, ref), (b, ours)):
            o.zero_grad()
            (m(x) ** 2).mean().backward()
            o.step()
    assert (a.weight - w0).abs().max() > 0.05  # the weights moved: not a comparison of two untouched copies
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_grad_clip_limits_update():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)

    def step(batch, trainer):
        loss = (model(torch.ones(1, 1)) - 100.0).pow(2).sum()  # gradient -200
        trainer.optimize(loss, opt)
        return {"loss": loss}

    Trainer(step, lambda: None, modules=model, grad_clip=1.0, progress=False).fit(steps=1)
    assert math.isclose(float(model.weight.detach()), 1.0, rel_tol=1e-5)  # clipped to norm 1, lr 1


_SIGINT_CHILD = """
import signal, time, torch
# A process started in the background (nohup, CI runners) inherits SIGINT as ignored; a terminal or a
# Jupyter kernel turns it into KeyboardInterrupt, which is what this child restores.
signal.signal(signal.SIGINT, signal.default_int_handler)
from torch import nn
from gencourse import data
from gencourse.train import Trainer
torch.manual_seed(0)
x = torch.randn(256, 3)
y = x @ torch.tensor([[1.5], [-2.0], [0.5]])
model = nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
before = model.weight.detach().clone()
def step(batch, trainer):
    xb, yb = batch
    loss = ((model(xb) - yb) ** 2).mean()
    trainer.optimize(loss, opt)
    if trainer.step == 5:
        print("running", flush=True)
    time.sleep(0.005)
    return {"loss": loss}
trainer = Trainer(step, data.BatchIterator(x, y, batch_size=32), modules=model, optimizers=opt, log_every=10,
                  progress=False)
hist = trainer.fit(steps=10**6)
print("result", hist.interrupted, trainer.step, not torch.equal(model.weight, before), hist.steps[-1] == trainer.step,
      flush=True)
"""


def test_a_real_sigint_returns_the_partial_model_and_history():
    """Ctrl-C as the terminal (or Jupyter's "interrupt kernel") sends it: SIGINT to the training process."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _SIGINT_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    result = [ln for ln in out.splitlines() if ln.startswith("result ")]
    assert result, out
    _, interrupted, step, changed, logged = result[0].split()
    assert interrupted == "True" and 5 <= int(step) < 10**6 and changed == "True" and logged == "True"


def test_sgd_helper_matches_torch_sgd_and_is_fused():
    """gencourse.train.sgd (fused where available: no host read of the overflow flag under fp16) takes
    the same steps as torch's default SGD with momentum and per-group weight decay."""
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    groups = lambda m: [{"params": [m.weight], "weight_decay": 0.1}, {"params": [m.bias], "weight_decay": 0.0}]  # noqa: E731
    ref = torch.optim.SGD(groups(a), lr=0.05, momentum=0.9, foreach=False)
    ours = sgd(groups(b), lr=0.05, momentum=0.9)
    assert ours.defaults.get("fused") is True  # the installed torch has fused SGD on the CPU
    x = torch.randn(32, 5)
    w0 = a.weight.detach().clone()
    for _ in range(20):
        for m, opt in ((a, ref), (b, ours)):
            opt.zero_grad()
            (m(x) ** 2).mean().backward()
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6) and torch.allclose(a.bias, b.bias, atol=1e-6)
    assert not torch.allclose(a.weight, w0, atol=1e-3)
