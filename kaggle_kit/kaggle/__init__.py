"""Everything that talks to Kaggle: the API client (`api/`, the only importer of `kaggle`), and code
competitions: packaging a run as a notebook with its dataset, and the offline rehearsal."""
