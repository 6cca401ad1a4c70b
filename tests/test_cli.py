import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "gencourse", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    res = run("--help")
    assert res.returncode == 0 and "data" in res.stdout


def test_no_command_prints_help_and_fails():
    res = run()
    assert res.returncode == 2 and "usage" in res.stdout


def test_unknown_dataset_is_a_clear_error():
    res = run("data", "cifar10", "--no-fetch")
    assert res.returncode == 2 and "unknown dataset" in res.stderr and "Traceback" not in res.stderr
