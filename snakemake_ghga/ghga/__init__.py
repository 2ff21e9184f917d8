"""GHGA's API: the JSON requests (``api``), their models (``models``) and
work-package tokens (``token``). Imports ``config``, ``errors``, ``redact``;
never ``transfer``, ``client`` or the CLI.
"""
