process GHGA_UPLOAD {
    tag "${meta.id}"
    label 'process_low'
    // The upload token, as the GHGA Data Portal shows it: `nextflow secrets set GHGA_UPLOAD_TOKEN '<token>'`
    secret 'GHGA_UPLOAD_TOKEN'

    conda "${moduleDir}/environment.yml"

    input:
    tuple val(meta), path(files)
    tuple path(private_key), path(public_key)

    output:
    tuple val(meta), path("${prefix}.receipt.json"), emit: receipt
    tuple val("${task.process}"), val('ghga-transfer'), eval("ghga-transfer --version | sed 's/^ghga-transfer //'"), topic: versions, emit: versions_ghga_transfer

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def alias_prefix = task.ext.alias_prefix ?: ''
    """
    export GHGA_WORK_PACKAGE_TOKEN="\$GHGA_UPLOAD_TOKEN"
    for file in ${files}; do
        printf '%s\\t%s%s\\n' "\$file" "${alias_prefix}" "\$file"
    done > ${prefix}.upload.tsv
    ghga-transfer upload \\
        --tsv ${prefix}.upload.tsv \\
        --receipt ${prefix}.receipt.json \\
        --my-private-key ${private_key} \\
        --my-public-key ${public_key} \\
        ${args}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    echo '{"files": []}' > ${prefix}.receipt.json
    """
}
