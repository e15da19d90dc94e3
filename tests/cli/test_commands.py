"""One ``zoo`` command: the console script and ``python -m zoo``, every command's help, the module shims, and the old
flag spellings taken with a notice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, finish

from zoo.cli import main
from zoo.cli.app import COMMANDS
from zoo.cli.flags import renamed

#: the commands that work on a recipe or a run, whose usage line names --recipe
WITH_RECIPE = ["fit", "validate", "test", "predict", "list", "summary", "visualize", "embed"]
#: each command's own options, as its usage line must name them
OWN_OPTIONS = {
    "fit": ["--ckpt_path", "--resume_with_changes", "--run_dir", "--save_every_n_steps"],
    "validate": ["--ckpt_path"],
    "test": ["--ckpt_path"],
    "predict": ["--ckpt_path", "--output"],
    "list": ["--recipe"],
    "summary": ["--input_size", "--num_classes", "--option"],
    "export": ["--ckpt_path", "--output"],
    "visualize": ["--ckpt_path", "--what", "--output", "--layer", "--channel", "--target", "--num_images"],
    "stylize": ["--style", "--output", "--content", "--method", "--ckpt_path", "--style_weight"],
    "embed": ["--ckpt_path", "--output", "--split"],
}


def zoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=REPO, timeout=120,
        stdin=subprocess.DEVNULL, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip


def test_every_command_is_listed_and_has_a_module() -> None:
    assert set(COMMANDS) == {
        "fit", "validate", "test", "predict", "list", "summary", "export", "visualize", "stylize", "embed"
    }  # fmt: skip
    listed = zoo()
    assert listed.returncode == 2  # no command: the list of them, and a status that says something is missing
    for command in COMMANDS:
        assert f"  {command} " in listed.stdout
        assert (REPO / "zoo" / "cli" / f"{command}.py").is_file()


@pytest.mark.parametrize("command", sorted(OWN_OPTIONS))
def test_help_names_the_recipe_and_the_commands_own_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(command, ["--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert usage.startswith(f"usage: zoo {command}"), usage
    for option in OWN_OPTIONS[command] + (["--recipe"] if command in WITH_RECIPE else []):
        assert option in usage, (option, usage)


def test_unknown_command_is_one_line_and_exit_2() -> None:
    result = zoo("train", "--recipe", "lenet5_fashionmnist")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "zoo: error: unknown command 'train'; the commands are " + ", ".join(COMMANDS)
    ]


def side_by_side(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """``python COMMAND`` for each of the commands, all started at once: each spends seconds importing."""
    processes = [subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=REPO) for command in commands]  # fmt: skip
    try:
        return [finish(process, timeout=60) for process in processes]
    finally:
        for process in processes:
            process.kill()  # none is left running, whatever happened (nothing is sent to one that has ended)


def test_a_command_leaves_its_objects_out_of_pythons_last_collection() -> None:
    # a handler registered before the command runs after the command's own: by then every object is frozen
    check = ("import atexit, gc; atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0)); "
             "from zoo.cli import main; main('list', ['--recipe', 'lenet5_fashionmnist'])")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "frozen at exit: True", result.stdout


def test_python_dash_m_zoo_and_the_module_shims_run_the_same_command() -> None:
    *listed, bad = side_by_side(["-m", "zoo", "list"], ["-m", "zoo.fit", "--list"], ["-m", "zoo.test"])
    for result in listed:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0].startswith("alexnet_cifar ")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("zoo test: error: name a recipe")


def test_the_list_and_a_missing_or_unknown_recipe_are_answered_before_lightning_is_imported() -> None:
    # each answer took some seconds while Lightning was imported first; in a fresh process it must not be
    check = ("import sys; from zoo.cli import main; "
             "cases = [('fit', ['--list']), ('test', []), ('fit', ['--recipe', 'lenet5_fashionmnst']), "
             "('validate', ['--recipe', 'nope.yaml']), ('fit', ['--ckpt_path', 'x.ckpt'])]; "
             "print([main(command, argv) for command, argv in cases], 'lightning' in sys.modules)")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.stdout.splitlines()[0].startswith("alexnet_cifar ")
    assert result.stdout.splitlines()[-1] == "[0, 2, 2, 2, 2] False", result.stdout
    errors = result.stderr.splitlines()
    assert [line.split(": error: ")[0] for line in errors] == [
        "zoo test",
        "zoo fit",
        "zoo validate",
        "zoo fit",
    ]
    assert "did you mean lenet5_fashionmnist" in errors[1] and "nope.yaml does not exist" in errors[2]
    assert errors[0].endswith("or a config with --config FILE") and errors[3] == "zoo fit: " + errors[0][10:]


def test_the_console_script_is_installed() -> None:
    script = shutil.which("zoo", path=str(Path(sys.executable).parent))
    assert script is not None, "pip install . puts zoo on PATH"
    result = subprocess.run([script, "list"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "lenet5_fashionmnist" in result.stdout


def test_list_prints_one_recipe_whole(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("list", ["--recipe", "lenet5_fashionmnist"]) == 0
    assert capsys.readouterr().out == (REPO / "recipes" / "lenet5_fashionmnist.yaml").read_text()
    assert main("list", ["--recipe", "lenet5_fashionmnst"]) == 2
    assert "did you mean lenet5_fashionmnist" in capsys.readouterr().err


def test_old_spellings_become_new_ones_with_one_notice_each(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--ckpt", "a.ckpt", "--out=b.png", "--what", "filters", "--input-size", "1"]
    assert renamed("zoo visualize", argv, ["--ckpt_path", "--output"]) == [
        "--ckpt_path", "a.ckpt", "--output=b.png", "--what", "filters", "--input-size", "1"
    ]  # fmt: skip
    notices = capsys.readouterr().err.strip().splitlines()
    assert notices == [
        "zoo visualize: --ckpt is deprecated, use --ckpt_path (the old spelling goes in the next release)",
        "zoo visualize: --out is deprecated, use --output (the old spelling goes in the next release)",
    ]
