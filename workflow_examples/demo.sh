#!/usr/bin/env bash
# The README's first command (`make demo`): a whole GHGA round trip on this machine.
#
# Starts the GHGA sandbox (a strict local GHGA) on a free port, uploads two
# FASTQ files with `ghga-transfer upload` (the sandbox archives them as
# accessions), runs the demo workflow twice -- once with the `ghga` storage
# plugin, once with the rule wrappers -- which download the accessions, compute
# statistics and upload the results, then shows the sandbox's state and stops it.
#
# Needs ghga-transfer and snakemake on PATH (`make demo` puts .venv/bin first).
# Works with no prior state, any number of times: everything lives in
# $GHGA_DEMO_DIR (default .demo/), which is emptied first and kept afterwards.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
workflows="$repo/workflow_examples/snakemake/demo"
demo=$(mkdir -p "${GHGA_DEMO_DIR:-$repo/.demo}" && cd "${GHGA_DEMO_DIR:-$repo/.demo}" && pwd)
if [ -n "$(ls -A "$demo")" ] && [ ! -e "$demo/.ghga-demo" ]; then
    echo "demo failed: $demo is not empty and not a demo directory; not emptying it" >&2
    exit 1
fi
find "$demo" -mindepth 1 -delete
touch "$demo/.ghga-demo"
cd "$demo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo failed: $*" >&2; exit 1; }
table() {  # align tab-separated stdin in columns
    python -c 'import sys
rows = [line.rstrip("\n").split("\t") for line in sys.stdin]
widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
for row in rows:
    print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())'
}

step "Start the GHGA sandbox on a free port"
ghga-transfer sandbox serve --state sandbox --port 0 >sandbox.url 2>sandbox.log &
sandbox_pid=$!
stop_sandbox() {
    kill "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
}
trap stop_sandbox EXIT
for _ in $(seq 100); do
    [ -s sandbox.url ] && break
    kill -0 "$sandbox_pid" 2>/dev/null || fail "the sandbox did not start: $(cat sandbox.log)"
    sleep 0.1
done
[ -s sandbox.url ] || fail "the sandbox printed no URL within 10 s"
GHGA_WKVS_URL=$(head -n 1 sandbox.url)
export GHGA_WKVS_URL
echo "sandbox (pid $sandbox_pid) at $GHGA_WKVS_URL; state in $demo/sandbox"

step "Make your Crypt4GH key pair (key.sec, key.pub)"
python - <<'PY'
from snakemake_ghga.crypt4gh import keys

secret, public = keys.generate_key_pair()
keys.write_private_key("key.sec", secret)
keys.write_public_key("key.pub", public)
PY
ls -l key.sec key.pub

step "A submitter uploads two FASTQ files with ghga-transfer upload"
mkdir seed
python - <<'PY'
import random

rng = random.Random(7)
for sample, gc in (("tumor", 0.58), ("normal", 0.41)):
    with open(f"seed/{sample}.fastq", "w") as fastq:
        for read in range(2000):
            bases = "".join(
                rng.choice("GC") if rng.random() < gc else rng.choice("AT")
                for _ in range(100)
            )
            quality = "".join(chr(33 + rng.randint(20, 40)) for _ in range(100))
            fastq.write(f"@{sample}.{read}\n{bases}\n+\n{quality}\n")
PY
GHGA_WORK_PACKAGE_TOKEN=$(ghga-transfer sandbox token upload --state sandbox --user-public-key key.pub)
export GHGA_WORK_PACKAGE_TOKEN
printf 'seed/tumor.fastq\tseed/tumor.fastq\nseed/normal.fastq\tseed/normal.fastq\n' >seed.tsv
ghga-transfer upload --tsv seed.tsv
unset GHGA_WORK_PACKAGE_TOKEN

step "The archive interrogates the uploads and gives them accessions"
accession_of() {  # alias -> accession, once the sandbox has archived it
    ghga-transfer sandbox ls --state sandbox |
        awk -F '\t' -v alias="$1" '$1 == "UPLOAD" && $4 == alias && $3 == "interrogated" {
            sub("accession=", "", $6); print $6 }'
}
for _ in $(seq 100); do
    tumor=$(accession_of seed/tumor.fastq)
    normal=$(accession_of seed/normal.fastq)
    [ -n "$tumor" ] && [ -n "$normal" ] && break
    sleep 0.2
done
[ -n "$tumor" ] && [ -n "$normal" ] || fail "the seed uploads were not archived"
printf 'samples:\n  tumor: %s\n  normal: %s\n' "$tumor" "$normal" | tee config.yaml

step "You get a download token for both accessions and an upload token"
download_token=$(ghga-transfer sandbox token download --state sandbox --user-public-key key.pub "$tumor" "$normal")
upload_token=$(ghga-transfer sandbox token upload --state sandbox --user-public-key key.pub --new-box)
echo "(tokens stay in environment variables; they never go on a command line)"

step "Workflow 1: the storage plugin fetches the accessions, the results go to GHGA"
mkdir storage-run
ln -s ../key.sec ../key.pub storage-run/
SNAKEMAKE_STORAGE_GHGA_WKVS_URL=$GHGA_WKVS_URL \
    SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN=$download_token \
    SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN=$upload_token \
    snakemake --snakefile "$workflows/Snakefile" --directory storage-run \
    --configfile config.yaml --config upload_prefix=demo/storage --cores 2 \
    --storage-ghga-my-public-key key.pub --storage-ghga-my-private-key key.sec \
    --quiet host progress
table <storage-run/results/summary.tsv

step "Workflow 2: the same with the ghga/download and ghga/upload rule wrappers"
mkdir wrapper-run
ln -s ../key.sec ../key.pub wrapper-run/
GHGA_DOWNLOAD_TOKEN=$download_token GHGA_UPLOAD_TOKEN=$upload_token \
    snakemake --snakefile "$workflows/Snakefile.wrappers" --directory wrapper-run \
    --configfile config.yaml --config upload_prefix=demo/wrappers --cores 2 \
    --quiet host progress
echo "The upload receipt, one line per file:"
python -c 'import json, sys
for entry in json.load(open(sys.argv[1]))["files"]:
    print(json.dumps(entry))' wrapper-run/results/upload_receipt.json

step "What the sandbox holds: boxes, uploads (interrogated = checked by the Data Hub), accessions"
for _ in $(seq 100); do
    ghga-transfer sandbox ls --state sandbox | awk -F '\t' '$1 == "UPLOAD" && ($3 == "init" || $3 == "inbox") { busy = 1 } END { exit busy }' && break
    sleep 0.2
done
ghga-transfer sandbox ls --state sandbox | table
echo
echo "Your results box, as you see it (ghga-transfer ls):"
GHGA_WORK_PACKAGE_TOKEN=$upload_token ghga-transfer ls

step "Stop the sandbox"
stop_sandbox
trap - EXIT
echo "Done. Everything is in $demo (run again for a fresh start)."
