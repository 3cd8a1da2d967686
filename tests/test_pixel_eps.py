"""A pixel eps is a whole number of 1/255 steps: the attacked image is scored as 8-bit pixels,
where 0.5/255 would round to 1/255 or to nothing."""


import pytest

from modint.attacks import PGDConfig
from modint.attacks.vlm import attack
from modint.data.sample import Sample
from modint.perturb import get_condition

from conftest import make_image


@pytest.mark.parametrize("eps", ["0.5", "1.5", "7.999"])
def test_a_fractional_pixel_eps_is_refused_by_name(eps):
    with pytest.raises(KeyError, match=rf"pgd_pixel@{eps}.*not a whole number of 1/255 steps"):
        get_condition(f"pgd_pixel@{eps}")


def test_whole_pixel_eps_and_fractional_embed_eps_are_accepted():
    assert get_condition("pgd_pixel@2.0").parameters["eps"] == 2
    assert get_condition("pgd_pixel@0").name == "pgd_pixel@0"
    assert get_condition("pgd_embed@0.05").parameters["eps"] == 0.05


def test_the_attack_refuses_a_fractional_pixel_eps_before_touching_the_model():
    sample = Sample("t", "text_heavy", "What is 2 + 2?", ("4", "5"), 0, make_image(1))
    with pytest.raises(ValueError, match="pixel eps 0.5 is not a whole number"):
        attack(None, [sample], "pixel", PGDConfig(eps=0.5))


@pytest.mark.parametrize("args", [["attack", "--space", "pixel", "--pixel-eps", "0,0.5"],
                                  ["diagnose", "--conditions", "noise_image,pgd_pixel@1.5"]])
def test_the_cli_refuses_it_with_one_line(args, tmp_path):
    from typer.testing import CliRunner

    from modint.cli import app

    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "not a whole number of 1/255 steps" in lines[0], result.stderr
