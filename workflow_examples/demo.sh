#!/usr/bin/env bash
# The README's demo: encrypt and decrypt a generated file with ghga-transfer.
# (Later: the sandbox workflow demo.) Works with no prior state, any number of times.
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/ghga-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
python - <<'PY'
from snakemake_ghga import keys
for name in ("key", "hub"):
    secret, public = keys.generate_key_pair()
    keys.write_private_key(f"{name}.sec", secret)
    keys.write_public_key(f"{name}.pub", public)
PY
head -c 3000000 /dev/urandom > sample.bin
echo "== encrypt for the hub, then decrypt as the hub"
ghga-transfer encrypt --recipient-public-key hub.pub --my-private-key key.sec sample.bin
ghga-transfer decrypt --my-private-key hub.sec --output-dir out sample.bin.c4gh
cmp sample.bin out/sample.bin && echo "== round trip is byte-identical"
