"""Statistics of one FASTQ file: reads, bases, GC content, mean base quality."""

# `snakemake` is injected by Snakemake's script preamble.
# ruff: noqa: F821

COLUMNS = ["sample", "accession", "reads", "bases", "gc_percent", "mean_quality"]


def fastq_stats(path):
    """Reads, bases, G+C bases and summed Phred qualities (Sanger offset 33)."""
    reads = bases = gc = quality = 0
    with open(path) as fastq:
        for number, line in enumerate(fastq):
            line = line.rstrip("\n")
            if number % 4 == 1:
                reads += 1
                bases += len(line)
                gc += line.count("G") + line.count("C")
            elif number % 4 == 3:
                quality += sum(ord(char) - 33 for char in line)
    return reads, bases, gc, quality


reads, bases, gc, quality = fastq_stats(snakemake.input[0])
row = [
    snakemake.wildcards.sample,
    snakemake.params.accession,
    reads,
    bases,
    f"{100 * gc / max(bases, 1):.2f}",
    f"{quality / max(bases, 1):.2f}",
]
with open(snakemake.output[0], "w") as out:
    out.write("\t".join(COLUMNS) + "\n" + "\t".join(map(str, row)) + "\n")
