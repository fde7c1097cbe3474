"""The examples run as tests, with the accuracy floors the README promises."""
import pathlib
import re

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(run_python, name, *args):
    out = run_python([str(EXAMPLES / name), *args], timeout=300, check=True).stdout
    match = re.search(r"^test accuracy: ([0-9.]+)$", out, re.MULTILINE)
    assert match, out
    return float(match.group(1)), out


def test_digits_multiclass_reaches_096(run_python, tmp_path):
    png = tmp_path / "curves.png"
    accuracy, out = run_example(run_python, "digits_multiclass.py", "--plot", str(png))
    assert accuracy >= 0.96
    # per-epoch progress: epoch i/N, loss, metrics and elapsed time
    lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == 100
    assert re.match(r"Epoch 100/100 - 45/45 - [0-9]+(s|ms|us) [0-9]+(s|ms|us)/step - "
                    r"loss: [0-9.]+ - accuracy: [0-9.]+$", lines[-1])
    if "matplotlib is not installed" not in out:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_digits_binary_separates_zero_and_one(run_python):
    accuracy, _ = run_example(run_python, "digits_binary.py")
    assert accuracy >= 0.99


@pytest.mark.parametrize("seed", [1, 2])
def test_digits_multiclass_other_seeds_stay_close(run_python, seed):
    # the network lands at about 0.96-0.97 whatever the seed, as in Keras and PyTorch
    accuracy, _ = run_example(run_python, "digits_multiclass.py", "--seed", str(seed),
                              "--verbose", "0", "--plot", "")
    assert accuracy >= 0.95


def test_digits_regularized_prints_both_curves(run_python, tmp_path):
    png = tmp_path / "curves.png"
    out = run_python([str(EXAMPLES / "digits_regularized.py"), "--epochs", "25", "--plot",
                      str(png)], timeout=300, check=True).stdout
    if "matplotlib is not installed" not in out:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [line for line in out.splitlines() if "best val_loss" in line]
    assert len(lines) == 2
    assert lines[0].strip().startswith("plain:")
    assert "L2 + Dropout + EarlyStopping:" in lines[1]
    for line in lines:
        accuracy = float(re.search(r"test accuracy ([0-9.]+)", line).group(1))
        assert accuracy > 0.9


def test_tune_digits_quick_search_with_two_jobs(run_python):
    out = run_python([str(EXAMPLES / "tune_digits.py"), "--quick", "--n-jobs", "2"],
                     timeout=300, check=True).stdout
    assert "backend: local (n_jobs=2)" in out
    assert re.search(r"^best params: \{'alpha': .*'learning_rate': [0-9.e-]+\}$", out,
                     re.MULTILINE), out
    assert float(re.search(r"^best CV accuracy: ([0-9.]+)$", out, re.MULTILINE).group(1)) > 0.8
    assert float(re.search(r"^test accuracy: ([0-9.]+)$", out, re.MULTILINE).group(1)) > 0.8
    assert re.search(r"^search time: [0-9.]+ s for 8 fits \([0-9.]+ fits/s\)$", out,
                     re.MULTILINE), out


def test_readme_quick_start_runs_and_is_right(capsys):
    """The README's quick start runs as written and its accuracy line is a real accuracy
    (predictions (n, 1) compared with labels (n,) after .ravel())."""
    pytest.importorskip("sklearn")
    readme = (EXAMPLES.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    quick = next(b for b in blocks if "load_digits(n_class=2" in b)
    namespace = {}
    exec(compile(quick, "README.md", "exec"), namespace)
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert accuracy >= 0.99
    assert namespace["W1"].shape == (64, 25)
    assert isinstance(namespace["loss"], float) and namespace["accuracy"] >= 0.99


def test_digits_cnn_reaches_098(run_python):
    accuracy, out = run_example(run_python, "digits_cnn.py", "--verbose", "0")
    assert accuracy >= 0.98
    assert re.search(r"^fit time: [0-9.]+ s for 25 epochs$", out, re.MULTILINE)


def test_ecg_conv1d_course_architecture_learns(run_python):
    accuracy, out = run_example(run_python, "ecg_conv1d.py")
    assert accuracy >= 0.85
    assert "course CNN (31 parameters)" in out and "Dense 100 -> 1 -> 1 (103 parameters)" in out
