import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gencourse import checkpoint

HERE = Path(__file__).resolve().parent


def cli(*args, cwd=None):
    env = dict(os.environ, GENCOURSE_PLUGINS="toy_recipe", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GENCOURSE_PROGRESS="off")
    return subprocess.run([sys.executable, "-m", "gencourse", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def run_main(*args, monkeypatch, capsys):
    """The command in this process (cheap); returns (exit code, stdout, stderr)."""
    from gencourse.__main__ import main

    monkeypatch.setenv("GENCOURSE_PLUGINS", "toy_recipe")
    monkeypatch.setenv("GENCOURSE_PROGRESS", "off")
    monkeypatch.syspath_prepend(str(HERE))
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def weights(path):
    return checkpoint.load(path).state["model"]


def test_train_writes_state_weights_and_metrics(tmp_path):
    res = cli("train", "toy-regression", "--steps", 30, "--out", tmp_path / "a", "--save-every", 10, "--device", "cpu")
    assert res.returncode == 0, res.stderr  # a real process: the command as users run it
    for f in ["state.pt", "toy-regression.pt", "toy-regression.pt.json", "metrics.json"]:
        assert (tmp_path / "a" / f).exists(), f
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["steps"] == 30 and "prediction_at_ones" in metrics and "final_loss" in metrics
    ck = checkpoint.load(tmp_path / "a" / "toy-regression.pt")
    assert ck.config["recipe"] == "toy-regression" and ck.meta["command"].startswith("python -m gencourse train")


def test_ship_copies_the_final_weights(tmp_path):
    from gencourse import recipes

    out = tmp_path / "run"
    env_weights = tmp_path / "weights"
    code = ("import sys; from gencourse import recipes; from pathlib import Path; "
            f"recipes.WEIGHTS_DIR = Path({str(env_weights)!r}); "
            "from gencourse.__main__ import main; sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, GENCOURSE_PLUGINS="toy_recipe", GENCOURSE_PROGRESS="off",
               PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code, "train", "toy-regression", "--steps", "5", "--out", str(out),
                          "--device", "cpu", "--ship", "--ship-as", "toy-regression-seed1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (env_weights / "toy-regression-seed1.pt").read_bytes() == (out / "toy-regression.pt").read_bytes()
    side = json.loads((env_weights / "toy-regression-seed1.pt.json").read_text())
    # what trained it and for how long are recorded with the weights
    assert "no GPU" in side["metrics"]["hardware"] and 0 < side["metrics"]["cpu_seconds"] < 600
    assert not (env_weights / "toy-regression.pt").exists()
    assert recipes.WEIGHTS_DIR.name == "weights"  # the real folder is untouched by this test


def test_resume_equals_one_run(tmp_path, monkeypatch, capsys):
    run = lambda *a: run_main(*a, monkeypatch=monkeypatch, capsys=capsys)  # noqa: E731
    assert run("train", "toy-regression", "--steps", 40, "--out", tmp_path / "one", "--device", "cpu")[0] == 0
    assert run("train", "toy-regression", "--steps", 20, "--out", tmp_path / "two", "--device", "cpu")[0] == 0
    torch.manual_seed(12345)  # the resumed run must not depend on the state of the process
    code, out, err = run("train", "toy-regression", "--steps", 40, "--out", tmp_path / "two", "--resume", "--device", "cpu")
    assert code == 0, err
    assert "resuming toy-regression from step 20" in out
    a, b = weights(tmp_path / "one" / "toy-regression.pt"), weights(tmp_path / "two" / "toy-regression.pt")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-3), k  # stored as float16
    sa, sb = (checkpoint.load(tmp_path / d / "state.pt").state for d in ("one", "two"))
    for k in sa["modules"]["model"]:
        assert torch.allclose(sa["modules"]["model"][k], sb["modules"]["model"][k], atol=1e-6), k


def test_bad_arguments_fail_cleanly(tmp_path, monkeypatch, capsys):
    res = cli("train", "no-such-model")  # a real process: exit code 2, one line, no traceback
    assert res.returncode == 2 and "unknown model 'no-such-model'" in res.stderr and "Traceback" not in res.stderr
    cases = [
        (("train", "no-such-model"), "unknown model 'no-such-model'"),
        (("train", "toy-regression", "--dataset", "cifar10", "--out", tmp_path / "x"), "trains on ['synthetic']"),
        (("train", "toy-regression", "--steps", "-5", "--out", tmp_path / "x"), "--steps must be a positive"),
        (("train", "toy-regression", "--set", "depth=3", "--out", tmp_path / "x"), "has no setting(s) ['depth']"),
        (("train", "toy-regression", "--resume", "--out", tmp_path / "nothing"), "there is no"),
        (("train", "toy-regression", "--ship-as", "x", "--out", tmp_path / "x"), "only makes sense with --ship"),
        (("train", "toy-regression", "--ship", "--ship-as", "a/b.pt", "--out", tmp_path / "x"), "bare file name"),
    ]
    for args, msg in cases:
        code, out, err = run_main(*args, monkeypatch=monkeypatch, capsys=capsys)
        assert code == 2, (args, out, err)
        assert msg in err and "Traceback" not in err, (args, err)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "state.pt").write_bytes(b"not a checkpoint")
    code, out, err = run_main("train", "toy-regression", "--resume", "--out", tmp_path / "bad",
                              monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "not a readable checkpoint" in err


def test_amp_setting_is_used_and_recorded(tmp_path, monkeypatch, capsys):
    """--amp bf16 on the CPU trains under bf16 autocast (the loss differs from the fp32 run's in the
    low bits, not more) and the metrics say which precision ran."""
    runs = {}
    for amp in ("off", "bf16"):
        code, out, err = run_main("train", "toy-regression", "--steps", 40, "--amp", amp, "--device", "cpu",
                                  "--out", tmp_path / amp, monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
        runs[amp] = json.loads((tmp_path / amp / "metrics.json").read_text())
    assert runs["off"]["amp"] == "float32" and runs["bf16"]["amp"] == "bfloat16 autocast"
    a, b = runs["off"]["final_loss"], runs["bf16"]["final_loss"]
    assert a != b and abs(a - b) < 0.05 * a


def test_help_lists_options(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main("train", "--help", monkeypatch=monkeypatch, capsys=capsys)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for opt in ["--steps", "--minutes", "--out", "--resume", "--dataset", "--ship", "--ship-as", "--hardware"]:
        assert opt in out
    code, out, _ = run_main("models", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "toy-regression" in out and "vae-mnist" in out


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path):
    """gloo, 2 ranks x 16 examples == 1 process x 32 examples (same global batch), one writer."""
    env = dict(os.environ, GENCOURSE_PLUGINS="toy_recipe", GENCOURSE_PROGRESS="off",
               PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = ["train", "toy-regression", "--set", "dropout=0.0", "--steps", "12", "--device", "cpu", "--log-every", "4"]
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={port}",
                          "-m", "gencourse", *args, "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("done:") == 1 and "global batch 32 = 2 x 16" in ddp.stdout
    single = cli(*args, "--set", "dropout=0.0", "--out", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    a = checkpoint.load(tmp_path / "ddp" / "state.pt").state["modules"]["model"]
    b = checkpoint.load(tmp_path / "one" / "state.pt").state["modules"]["model"]
    assert set(a) == set(b)  # the same keys as one process
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    files = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert files == ["metrics.json", "state.pt", "state.pt.json", "toy-regression.pt", "toy-regression.pt.json"]
