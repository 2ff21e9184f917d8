"""Local files: created private (``private``), locked against a second run
(``locks``), checked for free space (``freespace``). Imports ``errors`` only.
"""
