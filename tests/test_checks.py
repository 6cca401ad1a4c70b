import pytest
import torch

from gencourse.checks import CheckFailed, expect_close, expect_tensor, run


def test_run_turns_stub_into_feedback():
    def stub(x):
        raise NotImplementedError("Exercise")

    with pytest.raises(CheckFailed, match="not written yet"):
        run(stub, 1)
    with pytest.raises(CheckFailed, match="pass the function itself"):
        run(3)
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        run(lambda: 1 / 0)


def test_expect_tensor_messages():
    with pytest.raises(CheckFailed, match="forget to `return`"):
        expect_tensor(None)
    with pytest.raises(CheckFailed, match=r"shape \(2,\), expected \(3,\)"):
        expect_tensor(torch.zeros(2), (3,))
    with pytest.raises(CheckFailed, match="NaN"):
        expect_tensor(torch.tensor([float("nan")]))


def test_expect_close_reports_the_hint_or_the_worst_entry():
    ref = torch.tensor([1.0, 2.0, 3.0])
    expect_close(ref + 1e-9, ref)
    with pytest.raises(CheckFailed, match="forgot the square"):
        expect_close(ref.sqrt(), ref, hints={"forgot the square": ref.sqrt()})
    with pytest.raises(CheckFailed, match=r"at index \(2,\): got 5, expected 3"):
        expect_close(torch.tensor([1.0, 2.0, 5.0]), ref)
