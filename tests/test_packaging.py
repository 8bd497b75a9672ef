"""A non-editable install carries everything the package needs at run time."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (found,) = out.glob("gato-*.whl")
    return found


def test_tokenizers_dir_is_not_a_package():
    # A tokenizers/__init__.py would shadow Hugging Face's `tokenizers` library.
    assert not (ROOT / "tokenizers" / "__init__.py").exists()


@pytest.mark.slow
def test_wheel_holds_the_package_its_data_and_the_text_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gato").rglob("*.py")}
    data = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gato" / "data").glob("*")}
    assert sources <= names, sorted(sources - names)
    assert data <= names, sorted(data - names)
    assert any(n.endswith(".data/data/share/gato/gato_sp32000.model") for n in names)
    assert not any(n.startswith(("tests/", "tokenizers/")) for n in names)


@pytest.mark.slow
def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--prefix",
            str(prefix),
            str(wheel),
        ],
        check=True,
    )
    # A bare interpreter whose sys.prefix is `prefix`: the wheel's own files come first; the
    # dependencies (numpy, sentencepiece) come from this environment's site-packages.
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    deps = sysconfig.get_paths()["purelib"]
    script = (
        "import sys; sys.prefix = sys.argv[1]; sys.path[:0] = [sys.argv[2]];"
        "sys.path.append(sys.argv[3]);"
        "import gato, gato.text, gato.tokenizer as tk;"
        "assert gato.__file__.startswith(sys.argv[2]), gato.__file__;"
        "p = gato.text.default_model_path(); assert str(p).startswith(sys.argv[1]), p;"
        "ids = tk.tokenize_text('Gato is a generalist agent.');"
        "assert tk.detokenize_text(ids) == 'Gato is a generalist agent.'; print('ok', p)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GATO_SPM_MODEL")}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(prefix), str(site), deps],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
