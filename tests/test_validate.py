"""gencourse.validate: the one-line boundary checks, against hand-written expectations."""
import pytest
import torch

from gencourse import validate


def test_tensor_checks_and_the_message_format():
    x = torch.rand(2, 1, 4, 4)
    assert validate.tensor(x, "f: x", shape=("B", 1, 4, 4), dtype="float", values=(0, 1), finite=True) is x
    with pytest.raises(validate.InputError) as err:
        validate.tensor(x, "f: x", shape=("B", 1, 28, 28), fix="resize it")
    assert str(err.value) == "f: x: expected shape (B, 1, 28, 28), got a float32 tensor of shape (2, 1, 4, 4) on cpu; fix: resize it"
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\], got values from 0 to 2"):
        validate.tensor(torch.tensor([0.0, 2.0]), "v", values=(0, 1))
    with pytest.raises(ValueError, match="expected whole numbers, got 0.5"):
        validate.tensor(torch.tensor([1.0, 0.5]), "t", integral=True)
    with pytest.raises(ValueError, match="2 NaN or infinite entries"):
        validate.tensor(torch.tensor([1.0, float("nan"), float("inf")]), "v", finite=True)
    with pytest.raises(ValueError, match="expected an integer tensor, got a float32"):
        validate.tensor(torch.zeros(3), "t", dtype="int")
    with pytest.raises(ValueError, match="expected a torch.Tensor, got list"):
        validate.tensor([1, 2], "x")
    with pytest.raises(ValueError, match="expected a tensor on cuda"):
        validate.tensor(torch.zeros(1), "x", device="cuda")
    # value checks read the tensor; the GPU-only skip leaves CPU tensors checked
    with validate.device_values_unchecked():
        with pytest.raises(ValueError, match="values in"):
            validate.tensor(torch.tensor([3.0]), "v", values=(0, 1))


def test_numbers_and_settings():
    assert validate.integer(3, "k", lo=1) == 3
    for bad in (True, 2.0, "3", 0):
        with pytest.raises(ValueError, match="k: expected an integer >= 1"):
            validate.integer(bad, "k", lo=1)
    assert validate.number(1, "lr", lo=0, lo_open=True) == 1.0
    for bad in (0, -1e-3, float("nan"), None, "abc"):
        with pytest.raises(ValueError, match="lr: expected a number > 0"):
            validate.number(bad, "lr", lo=0, lo_open=True)
    # settings: the default's type, the range of SETTING_RANGES
    assert validate.setting("hidden", (64, 32), [512, 256]) == [64, 32]
    assert validate.setting("betas", [0, 0.9], [0, 0.9]) == [0, 0.9]   # mixed int/float default: numbers
    with pytest.raises(ValueError, match=r"'betas'\[1\]: expected a number"):
        validate.setting("betas", [0, "x"], [0, 0.9])
    with pytest.raises(ValueError, match=r"'hidden'\[1\]: expected an integer"):
        validate.setting("hidden", [64, 0.5], [512, 256])
    assert validate.setting("x_sigma", None, None) is None and validate.setting("x_sigma", 0.1, None) == 0.1
    with pytest.raises(ValueError, match="'x_sigma': expected a number >= 0"):
        validate.setting("x_sigma", -1, None)
    with pytest.raises(ValueError, match="'binarize': expected true or false, got 1"):
        validate.setting("binarize", 1, True)
    with pytest.raises(ValueError, match=r"'dropout': expected a number in \[0, 1\)"):
        validate.setting("dropout", 1.0, 0.1)
