"""Competition declarations as TOML: the built-ins load to exactly their former values, dump and load round-trip,
discovery order with its override note, bad declarations as one-line errors, `kaggle-kit competitions`."""

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from helpers import REPO, assert_one_line_error, run_cli

from kaggle_kit.competitions import declaration
from kaggle_kit.competitions.declaration import LOCATED, PLACES, Competition, dump, load
from kaggle_kit.competitions.metrics import LOG_LOSS, QWK
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.core.errors import KitError

SNAPSHOT = Path(__file__).parent / "builtin_competitions.json"


def as_json(comp: Competition) -> dict:
    """The form the snapshot was taken in (from the former Python declarations, before they were deleted)."""
    data = json.loads(json.dumps(dataclasses.asdict(comp), default=str))
    data["metric"] = comp.metric.name
    for name in (*LOCATED, "label_source", "id_has_extension", "positive_class", "group_column"):
        data.pop(name)  # where it was found, and the fields added with the TOML form
    return data


def as_taken(value, snapshot):
    """`value` cut to the keys the snapshot holds: Recipe and AugmentSpec fields and augmentations added since
    (the levers) are new, every value the snapshot holds must be unchanged."""
    if isinstance(value, dict) and isinstance(snapshot, dict):
        return {key: as_taken(value.get(key), snapshot[key]) for key in snapshot}
    return value


@pytest.mark.parametrize("name", ["cifar10", "dog_breed"])
def test_built_ins_load_from_toml_to_their_former_values(name):
    comp = resolve(name)
    snapshot = json.loads(SNAPSHOT.read_text())[name]
    assert as_taken(as_json(comp), snapshot) == snapshot
    assert comp.source == "built-in" and comp.plans_dir == REPO / "competitions" / name / "plans"
    assert (comp.label_source, comp.id_has_extension, comp.positive_class, comp.group_column) == (
        "csv",
        False,
        None,
        None,
    )


@pytest.mark.parametrize("name", ["cifar10", "dog_breed"])
def test_dump_and_load_round_trip(name, tmp_path):
    comp = resolve(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(dump(comp))
    again = load(path)
    assert dataclasses.replace(again, source=comp.source, package_dir=comp.package_dir) == comp
    assert dump(again) == dump(comp)


def test_every_field_has_one_key():
    fields = {f.name for f in dataclasses.fields(Competition)}
    assert set(PLACES) | set(LOCATED) == fields and not set(PLACES) & set(LOCATED)
    assert len(set(PLACES.values())) == len(PLACES)


def test_new_fields_round_trip_with_every_metric_name_form(tmp_path):
    comp = dataclasses.replace(
        resolve("cifar10"),
        name="leaf",
        label_source="filename",
        id_kind="text",
        id_has_extension=True,
        submission_kind="binary",
        positive_class="dog",
        class_source="labels",
        group_column="patient",
        metric=QWK,
        title='Quotes "and" unicode: café',
    )
    text = dump(comp)
    assert 'metric = "qwk"' in text and '[submission]\nkind = "binary"\npositive_class = "dog"' in text
    path = tmp_path / "leaf.toml"
    path.write_text(text.replace('metric = "qwk"', 'metric = "Quadratic Weighted Kappa"'))
    assert dataclasses.replace(load(path), source=comp.source, package_dir=comp.package_dir) == comp
    path.write_text(text.replace('metric = "qwk"', 'metric = "Multi Class Log Loss"'))
    assert load(path).metric is LOG_LOSS


BAD = [
    ("[labels]\nid_kinds = 'int'", "unknown key 'labels.id_kinds' (did you mean labels.id_kind or"),
    ("colour = 'red'", "unknown key 'colour'"),
    ("native_size = '32'", "native_size = '32' is not a whole number"),
    ("[labels]\nid_kind = 'uuid'", "labels.id_kind = 'uuid' is not one of int, hex, text"),
    ("metric = 'accuracyy'", "metric: unknown metric 'accuracyy' (did you mean accuracy?)"),
    ("default_recipe = 'fats'", "default_recipe = 'fats' is not a recipe (did you mean fast?)"),
    ("[recipes.fast]\naug = 'modrn'", "recipes.fast.aug = 'modrn' is no augmentation (did you mean modern?)"),
    ("[recipes.fast]\nlearning_rate = 0.1", "[recipes.fast] unknown setting 'learning_rate' for Recipe"),
    ("[recipes.fast]\nepochs = 0", "[recipes.fast] invalid setting epochs=0"),
    ("[augmentations.modern]\nflip = true", "[augmentations.modern] unknown setting 'flip' for AugmentSpec"),
    ("[from_scratch.fats]\nlr = 0.1", "[from_scratch.fats] is not a recipe (did you mean fast?)"),
    ("[normalize]\nmean = [0.5, 0.5]", "normalize.mean = [0.5, 0.5] is not a list of 3 values"),
    ("[submission]\nkind = 'binary'", "needs submission.positive_class"),
    ("aliases = 'cifar'", "aliases = 'cifar' is not a list"),
    ("name = ", "not valid TOML"),
    ("files = 3", "files = 3 is not a table ([files])"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m.split(" ")[0] for _, m in BAD])
def test_a_bad_declaration_is_a_one_line_error_naming_file_and_key(change, message, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(_with_change(dump(resolve("cifar10")), change))
    with pytest.raises(KitError) as raised:
        load(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_a_missing_key_is_named(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(dump(resolve("cifar10")).replace('slug = "cifar-10"\n', ""))
    with pytest.raises(KitError, match="missing key 'slug'"):
        load(path)


def _with_change(text: str, change: str) -> str:
    """`text` with the TOML fragment `change` laid over it (text that is not TOML is appended as it is)."""
    try:
        fragment = tomllib.loads(change)
    except tomllib.TOMLDecodeError:
        return text + change + "\n"
    tree = tomllib.loads(text)
    merge(tree, fragment)
    return declaration._write_table(tree, [])


def merge(tree: dict, fragment: dict) -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            merge(tree[key], value)
        else:
            tree[key] = value


# ------------------------------------------------------------------------------------------------ discovery


def write_declaration(path: Path, **changes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(dataclasses.replace(resolve("cifar10"), **changes)))
    return path


def test_discovery_order_user_then_local_and_the_override_note(tmp_path):
    config, work = tmp_path / "config", tmp_path / "work"
    user = write_declaration(
        config / "kaggle-kit" / "competitions" / "pets.toml", name="pets", slug="pets-a", title="A"
    )
    local = write_declaration(
        work / "competitions" / "pets" / "competition.toml", name="pets", slug="pets-b", title="B"
    )
    (local.parent / "plans").mkdir()
    write_declaration(config / "kaggle-kit" / "competitions" / "cifar10.toml", title="My CIFAR", aliases=("mine",))
    result = run_cli("competitions", cwd=work, env={"XDG_CONFIG_HOME": config})
    assert result.returncode == 0, result.stderr
    assert f"note: {local} declares pets, overriding {user}\n" in result.stderr
    built_in = REPO / "competitions" / "cifar10" / "competition.toml"
    assert f"declares cifar10, overriding {built_in} (built-in)\n" in result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert sorted(rows) == ["cifar10", "dog_breed", "pets"]
    assert str(local) in rows["pets"] and "pets-b" in rows["pets"] and str(user) not in rows["pets"]
    assert "built-in" in rows["dog_breed"] and "logloss (lower is better)" in rows["dog_breed"]
    assert "labels csv, submit label, ids int" in rows["cifar10"] and "fast (default), paper" in rows["cifar10"]
    # a <name>/competition.toml keeps its folder's plans
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        patch.setenv("XDG_CONFIG_HOME", str(config))
        assert resolve("pets-b").plans_dir == local.parent / "plans" and resolve("mine").title == "My CIFAR"
        assert resolve("pets-b").source == str(local)
    # the note is said once per process, however often the registry is read
    again = run_cli("competitions", cwd=work, env={"XDG_CONFIG_HOME": config})
    assert again.returncode == 0 and "note:" not in again.stderr and again.stdout == result.stdout


def test_a_broken_user_declaration_is_a_note_until_it_is_asked_for(tmp_path):
    config = tmp_path / "config"
    broken = config / "kaggle-kit" / "competitions" / "leaves.toml"
    broken.parent.mkdir(parents=True)
    broken.write_text('name = "leaves"\nmetric = "kappa-ish"\n')
    env = {"XDG_CONFIG_HOME": config}
    listed = run_cli("competitions", cwd=tmp_path, env=env)
    assert listed.returncode == 0 and f"note: skipped {broken}: {broken}: " in listed.stderr
    assert "metric: unknown metric" in listed.stderr
    asked = run_cli("info", "leaves", cwd=tmp_path, env=env)  # every problem at once: the metric, the missing keys
    assert_one_line_error(asked, f"{broken}: ", "metric: unknown metric 'kappa-ish'", "missing keys 'slug', 'title'")


def test_a_broken_declaration_asked_for_by_its_stated_name_or_slug_gives_its_reason(tmp_path):
    # init --out writes any file name: asking by the name or slug inside must not say "unknown competition"
    broken = tmp_path / "competitions" / "mine.toml"
    broken.parent.mkdir()
    broken.write_text('name = "leaf_spots"\nslug = "leaf-spots-2026"\nmetrc = "auc"\n')
    for asked_as in ("leaf_spots", "leaf-spots-2026"):
        asked = run_cli("info", asked_as, cwd=tmp_path, env={"XDG_CONFIG_HOME": tmp_path / "config"})
        assert_one_line_error(asked, f"{broken}: ", "unknown key 'metrc' (did you mean metric?)")


def test_the_source_tree_folder_is_not_read_twice():
    # ./competitions of the source tree is the built-in folder itself: no override notes
    result = run_cli("competitions", cwd=REPO)
    assert result.returncode == 0 and "note:" not in result.stderr


def test_a_hand_written_declaration_names_all_its_problems_at_once(tmp_path):
    path = tmp_path / "mine.toml"
    text = (
        dump(resolve("cifar10"))
        .replace('slug = "cifar-10"\n', "")
        .replace('sample_file = "sampleSubmission.csv"\n', "")
    )
    path.write_text(_with_change(text, "colour = 'red'\nnative_size = '32'"))
    with pytest.raises(KitError) as raised:
        load(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: 3 problems: ") and "\n" not in text
    for problem in ("unknown key 'colour'", "native_size = '32' is not a whole number", "keys 'slug', 'files.sample"):
        assert problem in text


def test_a_folder_labelled_declaration_needs_no_label_file(tmp_path):
    """State Farm's labels are its class folders: label_file and label_column have nothing to name."""
    path = tmp_path / "drivers.toml"
    text = (
        dump(resolve("cifar10")).replace('label_file = "trainLabels.csv"\n', "").replace('label_column = "label"\n', "")
    )
    path.write_text(_with_change(text, "[labels]\nsource = 'folders'\ngroup_column = 'subject'\ngroup_file = 'd.csv'"))
    comp = load(path)
    assert (comp.label_file, comp.label_source, comp.group_column, comp.group_file) == (
        "",
        "folders",
        "subject",
        "d.csv",
    )
    path.write_text(text)  # labels in a CSV still name it
    with pytest.raises(KitError, match="missing keys 'files.label_file', 'labels.label_column'"):
        load(path)
