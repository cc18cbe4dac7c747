"""Any competition's generated download, by what its declaration says the answers depend on."""

from pathlib import Path

from .registry import Competition
from .samples import write_sample
from .tabular_samples import write_tabular_sample
from .target_samples import write_target_sample
from .targets import target_of


def write_any_sample(comp: Competition, out_dir: Path | str, **options) -> Path:
    """The generated download of any competition: answers depending on the image and tabular columns where it
    declares features (tabular_samples), else by the writer its target kind names: one label a class's colour
    (samples), or truths the kind draws (target_samples)."""
    if comp.features:
        return write_tabular_sample(comp, out_dir, **options)
    writers = {"classes": write_sample, "drawn": write_target_sample}
    return writers[target_of(comp).sample_writer](comp, out_dir, **options)
