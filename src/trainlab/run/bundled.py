"""The recipes that ship inside the package, and how a name on the command line becomes a file.

`src/trainlab/recipes/*.yaml` are trainable recipes (`trainlab train mlp`);
`src/trainlab/recipes/studies/*.yaml` are studies over several runs: comparison files
(`trainlab compare compare-sam`) and connect files (`trainlab connect connect`). Both are
package data, so an installed wheel has them too.
"""

from __future__ import annotations

from pathlib import Path

from trainlab.names import closest_name_error
from trainlab.run.config import RecipeError, read_yaml_mapping

RECIPES_DIR = Path(__file__).parents[1] / "recipes"
STUDIES_DIR = RECIPES_DIR / "studies"


def bundled_recipes() -> dict[str, Path]:
    """Bundled trainable recipes by name."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def bundled_studies() -> dict[str, Path]:
    """Bundled comparison and connect files by name."""
    return {p.stem: p for p in sorted(STUDIES_DIR.glob("*.yaml"))}


def study_kind(raw: dict) -> str | None:
    """ "comparison", "connect" or "search" for a study file's mapping, None for a recipe."""
    if "space" in raw:
        return "search"
    if "variants" in raw:
        return "comparison"
    if "curve" in raw or isinstance(raw.get("recipe"), dict):
        return "connect"
    return None


def first_line(path: Path) -> str:
    """A file's first comment line (its description), without the '#'."""
    lines = path.read_text(errors="replace").splitlines()
    return lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else ""


def _lookup(name: str, bundled: dict[str, Path], what: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        raise RecipeError(f"{path}: a directory; expected {what} (a YAML file or bundled name)")
    stem = name.removesuffix(".yaml")
    if stem in bundled:
        return bundled[stem]
    if name.endswith(".yaml") or "/" in name:
        raise RecipeError(f"{what} file not found: {path}")
    raise RecipeError(f"{closest_name_error(what, name, bundled)} (or a YAML file's path)")


def recipe_file(name: str) -> Path:
    """The recipe file a command-line name means: a path, or a bundled recipe's name. A study
    file given to `train` is one line saying which command runs it."""
    stem, studies = name.removesuffix(".yaml"), bundled_studies()
    if not Path(name).exists() and stem not in bundled_recipes() and stem in studies:
        path = studies[stem]
    else:
        path = _lookup(name, bundled_recipes(), "recipe")
    if path.parent != RECIPES_DIR:
        kind = study_kind(read_yaml_mapping(path))
        if kind is not None:
            command = {"comparison": "compare", "search": "search"}.get(kind, "connect")
            raise RecipeError(f"{name} is a {kind} file, not a recipe; run it with: "
                              f"trainlab {command} {name}")  # fmt: skip
    return path


def study_file(name: str) -> Path:
    """A comparison or connect file: a path, or a bundled study's name."""
    return _lookup(name, bundled_studies(), "study")


def base_recipe_file(name: str, beside: Path) -> Path:
    """The base recipe a study names: a path relative to the study file, else a bundled
    recipe's name."""
    relative = beside.parent / name
    return relative if relative.is_file() else _lookup(name, bundled_recipes(), "recipe")
