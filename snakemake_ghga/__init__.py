"""snakemake-ghga: move data in and out of GHGA from workflows and the shell.

The library behind the `ghga-transfer` CLI, the Snakemake storage plugin
`ghga`, the rule wrappers and the sandbox. It never imports snakemake.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
