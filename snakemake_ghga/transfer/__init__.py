"""Moving files: the part engine (``engine``) and its helpers (``parts``,
``concurrency``, ``proxies``, ``futures``), journals (``journal``), one run's
context (``context``), one upload (``upload``, whose PUTs are
``part_uploads``) and one download (``download``). Imports ``ghga``,
``crypt4gh``, ``files`` and the base modules; never ``client`` or the CLI.
"""
