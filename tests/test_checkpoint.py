import json
import pickle

import pytest
import torch
from torch import nn

from gencourse import checkpoint


def small_model(width=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))


def test_roundtrip_with_metadata(tmp_path):
    m = small_model()
    path = tmp_path / "m.pt"
    meta = checkpoint.save(path, m, config={"width": 4}, metrics={"loss": 0.5}, command="python train.py")
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ck = checkpoint.load(path, other)
    for a, b in zip(m.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert ck.config == {"width": 4} and ck.metrics == {"loss": 0.5}
    assert ck.meta["command"] == "python train.py" and ck.meta["gencourse_version"]
    side = json.loads((tmp_path / "m.pt.json").read_text())
    import hashlib
    assert side["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert side["tensors_sha256"] == meta["tensors_sha256"]


def test_half_storage_roundtrip(tmp_path):
    m = small_model()
    checkpoint.save(tmp_path / "h.pt", m, half=True)
    raw = torch.load(tmp_path / "h.pt", weights_only=True)
    assert raw["state"]["model"]["0.weight"].dtype == torch.float16
    other = small_model()
    for p in other.parameters():
        p.data.zero_()
    checkpoint.load(tmp_path / "h.pt", other)
    assert other[0].weight.dtype == torch.float32
    assert torch.allclose(other[0].weight, m[0].weight, atol=1e-3)


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    checkpoint.save(path, small_model(), metrics={"v": 1})
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, small_model(), metrics={"v": 2})
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt.json"]  # no temp files left


def test_truncated_file_gives_clear_error(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, small_model())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(path)


def test_tampered_tensor_is_detected(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, small_model())
    payload = torch.load(path, weights_only=True)
    payload["state"]["model"]["0.weight"][0, 0] += 1.0
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(path)


def test_mismatched_model_names_the_problem(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, small_model(4), config={"width": 4})
    with pytest.raises(checkpoint.CheckpointError, match=r"shape mismatch: 0.weight: \(4, 3\) in file vs \(8, 3\).*'width': 4"):
        checkpoint.load(path, small_model(8))
    with pytest.raises(checkpoint.CheckpointError, match="has no entry 'generator'"):
        checkpoint.load(path, {"generator": small_model(4)})


def test_missing_file_and_foreign_pickle(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(checkpoint.CheckpointError, match="not a gencourse checkpoint"):
        checkpoint.load(path)  # weights_only refuses to run the pickled call


def test_metadata_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match="metrics.f has a function"):
        checkpoint.save(tmp_path / "m.pt", small_model(), metrics={"f": lambda: 1})


def test_trainer_state_roundtrip(tmp_path):
    from gencourse.train import Trainer

    m = small_model()
    opt = torch.optim.Adam(m.parameters())

    def step(batch, trainer):
        loss = m(torch.ones(2, 3)).pow(2).mean()
        trainer.optimize(loss, opt)
        return {"loss": loss}

    t = Trainer(step, lambda: None, modules=m, optimizers=opt, progress=False)
    t.fit(steps=3)
    checkpoint.save(tmp_path / "run.pt", t.state_dict())
    ck = checkpoint.load(tmp_path / "run.pt")
    t2 = Trainer(step, lambda: None, modules=small_model(), optimizers=torch.optim.Adam(small_model().parameters()),
                 progress=False)
    t2.load_state_dict(ck.state)
    assert t2.step == 3 and t2.history.steps == t.history.steps


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    checkpoint.save(tmp_path / "m.pt", small_model())
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.pt").stat().st_mode) == 0o666 & ~umask
