#!/usr/bin/env nextflow
/*
 * Download GHGA files, count their lines and bytes, upload the counts.
 *
 *   nextflow secrets set GHGA_DOWNLOAD_TOKEN '<download token from the Data Portal>'
 *   nextflow secrets set GHGA_UPLOAD_TOKEN '<upload token>'
 *   nextflow run main.nf --accessions GHGAF00000000000001,GHGAF00000000000002
 */

include { GHGA_DOWNLOAD } from './modules/ghga/download/main'
include { GHGA_UPLOAD   } from './modules/ghga/upload/main'

params.accessions  = ''
params.private_key = 'key.sec'
params.public_key  = 'key.pub'

process FILE_STATS {
    tag "${meta.id}"

    input:
    tuple val(meta), path(files)

    output:
    tuple val(meta), path("${meta.id}.stats.tsv"), emit: stats

    script:
    """
    for file in ${files}; do
        printf '%s\\t%s\\t%s\\n' "\$file" "\$(wc -l < "\$file")" "\$(wc -c < "\$file")"
    done > ${meta.id}.stats.tsv
    """
}

workflow {
    keys = channel.value([file(params.private_key), file(params.public_key)])
    samples = channel
        .fromList(params.accessions.tokenize(','))
        .map { accession -> [[id: accession], accession] }

    GHGA_DOWNLOAD(samples, keys)
    FILE_STATS(GHGA_DOWNLOAD.out.files)
    GHGA_UPLOAD(FILE_STATS.out.stats, keys)

    GHGA_UPLOAD.out.receipt.view { meta, receipt -> "uploaded ${meta.id}: ${receipt}" }
    channel.topic('versions').unique().view { process, tool, version -> "${process}: ${tool} ${version}" }
}
