# The demo's analysis, shared by both demo Snakefiles: per-sample FASTQ
# statistics and a summary table. The including Snakefile defines
# `fastq(wildcards)`, the input FASTQ of a sample.

SAMPLES = config["samples"]  # sample name -> GHGA accession


rule fastq_stats:
    input:
        fastq,
    output:
        "results/stats/{sample}.tsv",
    params:
        accession=lambda wildcards: SAMPLES[wildcards.sample],
    script:
        "scripts/fastq_stats.py"


rule summary:
    input:
        expand("results/stats/{sample}.tsv", sample=sorted(SAMPLES)),
    output:
        "results/summary.tsv",
    shell:
        "awk 'FNR > 1 || NR == 1' {input} > {output}"
